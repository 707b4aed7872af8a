//! pipelines library.
