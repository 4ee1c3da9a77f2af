pub mod export;
pub mod plot;
pub mod train;
