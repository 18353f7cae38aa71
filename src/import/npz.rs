//! `.npz` reading (stub).
