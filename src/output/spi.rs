//! SPI output through rppal (stub).
