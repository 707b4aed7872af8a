//! trigger client library.
