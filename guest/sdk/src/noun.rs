//! Nouns and their serialization (in progress).
