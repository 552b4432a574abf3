//! Nockma guest (in progress).
