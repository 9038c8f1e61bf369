//! k-ary reduction trees: how many nodes each level has.

/// Tasks per level of a k-ary tree over `leaves` inputs, from the level that reads the
/// leaves up to the single root; empty when there is one leaf (it is its own root).
pub fn tree_levels(leaves: u32, fan_in: u32) -> Vec<u32> {
    let k = fan_in.max(2);
    let mut levels = Vec::new();
    let mut n = leaves;
    while n > 1 {
        n = n.div_ceil(k);
        levels.push(n);
    }
    levels
}

/// Inputs of node `index` of a level whose level below has `below` nodes.
pub fn node_inputs(index: u32, below: u32, fan_in: u32) -> std::ops::Range<u32> {
    let k = fan_in.max(2);
    let start = index * k;
    start.min(below)..((index + 1) * k).min(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_shrink_by_the_fan_in_to_one_root() {
        assert!(tree_levels(1, 4).is_empty());
        assert_eq!(tree_levels(4, 4), vec![1]);
        assert_eq!(tree_levels(5, 4), vec![2, 1]);
        assert_eq!(tree_levels(5500, 4), vec![1375, 344, 86, 22, 6, 2, 1]);
    }

    #[test]
    fn every_input_is_read_exactly_once_per_level() {
        for leaves in 1..200u32 {
            for k in 2..7u32 {
                let mut below = leaves;
                for n in tree_levels(leaves, k) {
                    let mut seen = vec![0u32; below as usize];
                    for i in 0..n {
                        let r = node_inputs(i, below, k);
                        assert!(!r.is_empty());
                        for j in r {
                            seen[j as usize] += 1;
                        }
                    }
                    assert!(seen.iter().all(|&c| c == 1));
                    below = n;
                }
                assert_eq!(below, 1);
            }
        }
    }
}
