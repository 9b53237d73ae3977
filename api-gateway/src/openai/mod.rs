//! The OpenAI dialect: wire types for requests and responses, and their validation into
//! engine-ready jobs. Nothing outside this module and `routes` knows OpenAI's field names.

pub mod chat;
pub mod common;
pub mod completions;
