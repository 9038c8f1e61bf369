//! A parsed FITS primary header: its cards in file order, with typed look-ups.

use super::RestoringBeam;
use super::card::{Card, CardValue};

/// The cards of a FITS header (without `END`), in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FitsHeader {
    cards: Vec<Card>,
}

impl FitsHeader {
    pub fn new(cards: Vec<Card>) -> Self {
        Self { cards }
    }

    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// The value of the first card with `keyword` (FITS keywords should be unique).
    pub fn get(&self, keyword: &str) -> Option<&CardValue> {
        self.cards
            .iter()
            .find(|c| c.keyword == keyword)
            .and_then(|c| c.value.as_ref())
    }

    /// True when a card with `keyword` is present, with or without a value.
    pub fn contains(&self, keyword: &str) -> bool {
        self.cards.iter().any(|c| c.keyword == keyword)
    }

    /// A numeric value (integer or real).
    pub fn get_f64(&self, keyword: &str) -> Option<f64> {
        self.get(keyword).and_then(CardValue::as_f64)
    }

    pub fn get_i64(&self, keyword: &str) -> Option<i64> {
        match self.get(keyword)? {
            CardValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn get_str(&self, keyword: &str) -> Option<&str> {
        self.get(keyword).and_then(CardValue::as_str)
    }

    pub fn get_bool(&self, keyword: &str) -> Option<bool> {
        match self.get(keyword)? {
            CardValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The text of the `HISTORY` cards, in order.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.cards
            .iter()
            .filter(|c| c.keyword == "HISTORY")
            .map(|c| c.comment.as_str())
    }

    /// `BUNIT`, the brightness unit (e.g. `JY/BEAM`).
    pub fn bunit(&self) -> Option<&str> {
        self.get_str("BUNIT")
    }

    /// The restoring beam from `BMAJ`, `BMIN`, `BPA` (degrees), when all three are present.
    pub fn beam(&self) -> Option<RestoringBeam> {
        Some(RestoringBeam {
            bmaj_deg: self.get_f64("BMAJ")?,
            bmin_deg: self.get_f64("BMIN")?,
            bpa_deg: self.get_f64("BPA")?,
        })
    }
}
