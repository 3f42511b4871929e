//! The `hint:` line under an error: what the user can do next.
//!
//! Each error type says its own hint where it is defined, next to the
//! message it explains, so an error made deep down (a state lock, a config
//! key) keeps its advice however many layers wrap it. A wrapper asks its
//! cause through this trait instead of knowing every cause's variants.

/// What the user can do about an error, for the `hint:` line.
pub trait Hint {
    /// One sentence of advice, or `None` when there is nothing useful to say.
    fn hint(&self) -> Option<String> {
        None
    }
}
