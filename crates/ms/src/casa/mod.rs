//! The casacore side of the reader (cargo feature `casacore`): tables opened through
//! `rubbl_casatables`, the subtables, the row selection pass and the data pass.

pub(crate) mod bulk;
pub(crate) mod data;
pub(crate) mod rows;
pub(crate) mod subtables;
pub(crate) mod table;
