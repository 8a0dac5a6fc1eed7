//! Kafka export of the flow events (`--kafka brokers=HOST:PORT[,HOST:PORT...],topic=NAME`),
//! with librdkafka through the `rdkafka` crate: one message per event, the JSON line as
//! value and its Community ID as key (a flow's events land in one partition), batched
//! (`linger.ms`) and compressed (lz4 unless `compression=` says otherwise). Sending never
//! blocks: librdkafka's queue is bounded (`queue=` messages, default 100,000); when the
//! broker is away and the queue is full, events are dropped and counted, and capture goes
//! on. Delivery failures (after librdkafka's retries, within `message.timeout.ms`) are
//! counted too. The writer thread hands [`KafkaWriter`] each batch with the keys the workers
//! kept ([`crate::export::lines::Lines`]); nothing here is on the
//! packet path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::export::lines::{LineSink, Lines};
use crate::export::metrics as m;

/// Parsed `--kafka` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic of the events.
    pub topic: String,
    /// Topic of the Suricata EVE records (`--eve`), when they go to Kafka too.
    pub eve_topic: Option<String>,
    /// `compression.type`: none, gzip, snappy, lz4, zstd.
    pub compression: String,
    /// Messages librdkafka may queue (bounded memory while the broker is away).
    pub queue: u32,
    /// Longest a message may wait for delivery, milliseconds.
    pub message_timeout_ms: u32,
    /// Longest the sink waits at shutdown for queued messages, milliseconds.
    pub flush_timeout_ms: u32,
}

impl std::str::FromStr for KafkaOptions {
    type Err = String;

    /// `brokers=a:9092,b:9092,topic=events[,eve_topic=eve][,compression=lz4][,queue=100000]
    /// [,message_timeout_ms=60000][,flush_timeout_ms=10000]`: a comma-separated list
    /// of key=value; items without `=` continue the broker list.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut o = KafkaOptions {
            brokers: String::new(),
            topic: String::new(),
            eve_topic: None,
            compression: "lz4".into(),
            queue: 100_000,
            message_timeout_ms: 60_000,
            flush_timeout_ms: 10_000,
        };
        let mut last = "";
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None if last == "brokers" => ("brokers", item),
                None => return Err(format!("{item:?}: expected key=value")),
            };
            let num = |v: &str| v.parse::<u32>().map_err(|_| format!("{k}={v}: not a number"));
            match k {
                "brokers" if o.brokers.is_empty() => v.clone_into(&mut o.brokers),
                "brokers" => {
                    o.brokers.push(',');
                    o.brokers.push_str(v);
                }
                "topic" => v.clone_into(&mut o.topic),
                "eve_topic" if !v.is_empty() => o.eve_topic = Some(v.to_owned()),
                "compression" if ["none", "gzip", "snappy", "lz4", "zstd"].contains(&v) => {
                    v.clone_into(&mut o.compression);
                }
                "compression" => return Err(format!("compression={v}: use none, gzip, snappy, lz4 or zstd")),
                "queue" => o.queue = num(v)?.max(1),
                "message_timeout_ms" => o.message_timeout_ms = num(v)?,
                "flush_timeout_ms" => o.flush_timeout_ms = num(v)?,
                other => return Err(format!("unknown Kafka option {other:?}")),
            }
            last = k;
        }
        if o.brokers.is_empty() || o.topic.is_empty() {
            return Err("--kafka needs brokers=HOST:PORT and topic=NAME".into());
        }
        Ok(o)
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct KafkaCounts {
    /// Acknowledged by the broker.
    pub delivered: AtomicU64,
    /// Failed after retries (or timed out in the queue).
    pub failed: AtomicU64,
    /// Never queued: librdkafka's queue was full (broker away) or the event was malformed.
    pub dropped: AtomicU64,
    /// Still queued when the sink was closed and the flush timeout had passed: lost with
    /// the process (the metric counts them as dropped, reason `unsent_at_exit`).
    pub unsent: AtomicU64,
}

struct Ctx(Arc<KafkaCounts>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if result.is_ok() {
            self.0.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::KAFKA_MESSAGES, "result" => "delivered").increment(1);
        } else {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::KAFKA_MESSAGES, "result" => "failed").increment(1);
        }
    }
}

/// A Kafka producer of flow events.
pub struct KafkaSink {
    producer: ThreadedProducer<Ctx>,
    topic: String,
    eve_topic: Option<String>,
    flush_timeout: Duration,
    /// Delivery counters.
    pub counts: Arc<KafkaCounts>,
}

/// The producer could not be created.
#[derive(Debug, thiserror::Error)]
#[error("Kafka producer for {brokers}: {source}")]
pub struct KafkaSinkError {
    brokers: String,
    #[source]
    source: KafkaError,
}

impl KafkaSink {
    /// Creates the producer (it connects in the background: a broker that is down now is
    /// not an error).
    pub fn new(o: &KafkaOptions) -> Result<Self, KafkaSinkError> {
        let counts = Arc::new(KafkaCounts::default());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &o.brokers)
            .set("compression.type", &o.compression)
            .set("linger.ms", "50")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", o.queue.to_string())
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.timeout.ms", o.message_timeout_ms.to_string())
            .set("enable.idempotence", "false")
            .set("client.id", "nightjar")
            .create_with_context(Ctx(Arc::clone(&counts)))
            .map_err(|source| KafkaSinkError { brokers: o.brokers.clone(), source })?;
        for r in ["delivered", "failed"] {
            metrics::counter!(m::KAFKA_MESSAGES, "result" => r).increment(0);
        }
        metrics::counter!(m::KAFKA_DROPPED, "reason" => "queue_full").increment(0);
        Ok(Self {
            producer,
            topic: o.topic.clone(),
            eve_topic: o.eve_topic.clone(),
            flush_timeout: Duration::from_millis(u64::from(o.flush_timeout_ms)),
            counts,
        })
    }

    /// The topic of the EVE records, if they go to Kafka.
    pub fn eve_topic(&self) -> Option<&str> {
        self.eve_topic.as_deref()
    }

    /// Queues one message per line of `lines` to `topic`, keyed by the line's key (the
    /// flow's Community ID, kept by the worker that serialised it); never blocks.
    pub fn send_lines_to(&self, topic: &str, lines: &Lines) {
        for (line, key) in lines.iter() {
            let record = BaseRecord::to(topic).key(key).payload(line);
            if let Err((e, _)) = self.producer.send(record) {
                let reason = match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::QueueFull) => "queue_full",
                    Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
                    _ => "error",
                };
                self.drop_one(reason);
            }
        }
    }

    fn drop_one(&self, reason: &'static str) {
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::KAFKA_DROPPED, "reason" => reason).increment(1);
    }

    /// Waits up to the flush timeout for queued messages; those still queued then are
    /// counted as failed when librdkafka gives up on them (or lost with the process).
    pub fn flush(&self) -> u64 {
        let _ = self.producer.flush(self.flush_timeout);
        u64::try_from(self.producer.in_flight_count()).unwrap_or(0)
    }

    /// Flushes and counts what is still queued as unsent (the sink is closing).
    fn close(&self) {
        let left = self.flush();
        // Counted as the difference to what was already counted (a sink closes once per
        // writer: events and EVE).
        let before = self.counts.unsent.swap(left, Ordering::Relaxed);
        if left > before {
            metrics::counter!(m::KAFKA_DROPPED, "reason" => "unsent_at_exit").increment(left - before);
        }
    }
}

/// The sink for one stream (events, or EVE records to `eve_topic`). `flush` does not
/// wait (the live writer flushes after every batch); dropping the writer waits up to the
/// flush timeout for delivery.
pub struct KafkaWriter {
    sink: Arc<KafkaSink>,
    topic: String,
}

impl KafkaWriter {
    /// A writer into `sink`'s events topic.
    pub fn new(sink: Arc<KafkaSink>) -> Self {
        let topic = sink.topic.clone();
        Self { sink, topic }
    }

    /// A writer into `sink`'s EVE topic, if it has one.
    pub fn eve(sink: Arc<KafkaSink>) -> Option<Self> {
        let topic = sink.eve_topic.clone()?;
        Some(Self { sink, topic })
    }
}

impl LineSink for KafkaWriter {
    fn write_lines(&mut self, lines: &Lines) -> std::io::Result<()> {
        self.sink.send_lines_to(&self.topic, lines);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for KafkaWriter {
    fn drop(&mut self) {
        self.sink.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kafka_argument() {
        let o: KafkaOptions = "brokers=a:9092,b:9093,topic=events,queue=10".parse().expect("parse");
        assert_eq!(o.brokers, "a:9092,b:9093");
        assert_eq!(o.topic, "events");
        assert_eq!(o.queue, 10);
        assert_eq!(o.compression, "lz4");
        assert_eq!(o.eve_topic, None);
        let e: KafkaOptions = "brokers=a:9092,topic=events,eve_topic=eve".parse().expect("parse");
        assert_eq!(e.eve_topic.as_deref(), Some("eve"));
        assert!("topic=x".parse::<KafkaOptions>().is_err());
        assert!("brokers=a:1,topic=x,compression=brotli".parse::<KafkaOptions>().is_err());
        assert!("brokers=a:1,topic=x,colour=red".parse::<KafkaOptions>().is_err());
    }
}
