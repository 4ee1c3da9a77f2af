pub mod export;
pub mod train;
