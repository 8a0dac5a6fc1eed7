//! The control plane: everything that steers a running sensor from outside the packet
//! path, and nothing on it. It takes a configuration and the operator's requests; it
//! yields a model slot and a learner that the workers follow ([`Attach`]), and answers
//! on the HTTP endpoint. It must not touch packets, flows or a worker's state beyond
//! what [`Attach::attach`] hands the worker at its start.
//!
//! - [`Control`]: the model and the learner of a running sensor: the
//!   [`crate::runtime::ModelSlot`] the workers follow, the learner thread, and the hot
//!   swap of a full model (SIGHUP, `POST /model/reload`, or drift with
//!   `learning.on_drift = "reload"`). A swap loads and validates the new model and
//!   optimises it on the calling thread, then stores it; workers fork it between two
//!   batches, so capture never waits for it and no packet is dropped for it. A model
//!   that fails validation is refused and the running one stays.
//! - [`endpoint`]: `/metrics`, `/healthz`, `/readyz`, the feedback API, `POST
//!   /model/reload`, `GET /learning` and the live page ([`page`]).

pub mod endpoint;
pub mod page;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};

use crate::config::Config;
use crate::export::metrics as m;
use crate::inference::{Classifier, ModelBundle};
use crate::learn::service::{self, Msg};
use crate::learn::{Learner, Shared, intel::Intel, start_learner, trained_head};
use crate::runtime::{Attach, ModelSlot, PipelineError, Worker, WorkerLearn, load_model};

/// Scored flows queued for the learner before workers start dropping (and counting) them.
const LEARN_QUEUE: usize = 8192;

/// Model slot, learner thread and reload trigger of a running sensor.
pub struct Control {
    cfg: Config,
    /// The model the workers run.
    pub slot: Arc<ModelSlot>,
    /// Learning (head and learner queue), when it runs.
    pub shared: Option<Arc<Shared>>,
    fingerprints: bool,
    learner: Option<JoinHandle<Learner>>,
    /// Set to ask for a model reload (SIGHUP, the API).
    pub reload: Arc<AtomicBool>,
    /// Verdicts over time, for the live page.
    pub history: Arc<crate::export::live::History>,
}

fn learner_for(cfg: &Config, bundle: &ModelBundle, proto: &mut Classifier) -> Result<Learner, PipelineError> {
    crate::learn::check_head(proto, &trained_head(bundle, &cfg.learning)?)?;
    Ok(start_learner(bundle, &cfg.learning)?)
}

impl Control {
    /// Loads the model (and starts the learner when learning is on); `None` without a model.
    pub fn start(cfg: &Config) -> Result<Option<Self>, PipelineError> {
        let Some(bundle) = load_model(cfg)? else { return Ok(None) };
        let mut proto = Classifier::new(Arc::clone(&bundle), cfg.model.batch_size)?;
        m::model_info(&bundle.label(), bundle.meta.created_unix);
        let reload = Arc::new(AtomicBool::new(false));
        let (mut shared, mut learner, mut fingerprints) = (None, None, false);
        if cfg.learning.enabled {
            let l = learner_for(cfg, &bundle, &mut proto)?;
            crate::learn::register_metrics(&l);
            let intel = Intel::load(&cfg.learning.intel).map_err(crate::learn::LearnError::from)?;
            fingerprints = !intel.is_empty();
            let (tx, rx) = bounded(LEARN_QUEUE);
            let sh = Arc::new(Shared::new(l.state.head.clone(), Some(tx), Arc::clone(&reload)));
            let sh2 = Arc::clone(&sh);
            learner = Some(
                std::thread::Builder::new()
                    .name("nightjar-learner".into())
                    .spawn(move || service::run(l, &intel, &sh2, &rx))
                    .map_err(|source| PipelineError::Output { what: "learner thread", source })?,
            );
            shared = Some(sh);
        }
        Ok(Some(Self {
            cfg: cfg.clone(),
            slot: Arc::new(ModelSlot::new(proto)),
            shared,
            fingerprints,
            learner,
            reload,
            history: Arc::new(crate::export::live::History::default()),
        }))
    }

    /// A sender to the learner (for the API), when learning runs.
    pub fn learner_tx(&self) -> Option<Sender<Msg>> {
        self.shared.as_ref().and_then(|s| s.tx.clone())
    }

    /// Gives a worker the model slot and the learner.
    pub fn attach(&self, w: Worker) -> Worker {
        let w = w.with_slot(&self.cfg, &self.slot).with_history(&self.history);
        match &self.shared {
            Some(sh) => w.with_learning(WorkerLearn {
                shared: Arc::clone(sh),
                prequential: None,
                fingerprints: self.fingerprints,
            }),
            None => w,
        }
    }

    /// Reloads the model if asked (SIGHUP, the API, or drift with `on_drift = reload`).
    pub fn poll(&self) {
        if self.reload.swap(false, Ordering::Relaxed) {
            match self.reload_now() {
                Ok(g) => eprintln!("model reloaded (generation {g})"),
                Err(e) => eprintln!("warning: model reload refused, the running model stays: {e}"),
            }
        }
    }

    /// Loads, validates and swaps in the configured model file; returns its generation.
    pub fn reload_now(&self) -> Result<u64, PipelineError> {
        let res = (|| {
            let bundle = load_model(&self.cfg)?.ok_or(crate::learn::LearnError::NoModel)?;
            let mut proto = Classifier::new(Arc::clone(&bundle), self.cfg.model.batch_size)?;
            let learner = match &self.shared {
                Some(_) => Some(learner_for(&self.cfg, &bundle, &mut proto)?),
                None => None,
            };
            let generation = self.slot.swap(proto);
            m::model_info(&bundle.label(), bundle.meta.created_unix);
            if let (Some(sh), Some(l)) = (&self.shared, learner) {
                // Until the learner thread publishes the new head, workers on the new
                // model use its own softmax (the head's generation differs).
                if let Some(tx) = &sh.tx {
                    let _ = tx.send(Msg::NewModel { generation, learner: Box::new(l) });
                }
            }
            Ok(generation)
        })();
        metrics::counter!(m::MODEL_RELOADS, "result" => if res.is_ok() { "ok" } else { "refused" }).increment(1);
        res
    }

    /// Stops the learner thread after a last checkpoint.
    pub fn finish(mut self) {
        if let (Some(tx), Some(h)) = (self.learner_tx(), self.learner.take()) {
            let (rtx, rrx) = bounded(1);
            if tx.send(Msg::Stop(rtx)).is_ok() {
                let _ = rrx.recv();
            }
            drop(tx);
            self.shared = None;
            let _ = h.join();
        }
    }
}

impl Attach for Control {
    fn attach(&self, w: Worker) -> Worker {
        Control::attach(self, w)
    }

    fn poll(&self) {
        Control::poll(self);
    }
}
