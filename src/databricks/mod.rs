//! Account API client.
