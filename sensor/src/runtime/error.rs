//! The pipeline's error: what every stage can fail with, as the runtime reports it. Only
//! the runtime (and `main`) see it; each stage returns its own error type.

/// Errors of the replay pipeline as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A capture source failed.
    #[error(transparent)]
    Capture(#[from] crate::error::CaptureError),
    /// Writing events or features failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// Which output.
        what: &'static str,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Live capture could not start.
    #[error(transparent)]
    Live(#[from] crate::error::LiveError),
    /// A worker thread panicked (a bug; reported, not hidden).
    #[error("worker thread {0} panicked")]
    WorkerPanic(usize),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] crate::inference::InferenceError),
    /// Online learning could not start.
    #[error(transparent)]
    Learn(#[from] crate::learn::LearnError),
}
