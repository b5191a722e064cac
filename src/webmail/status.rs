//! The postmaster's status page: a sample of the server's counters every
//! minute, kept for six hours in memory, drawn as SVG line charts by the
//! server (no script, no external resource).

use crate::queue::spool::{QueueName, Spool};
use crate::store::MailStore;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Samples kept: six hours of minutes.
const KEPT: usize = 360;
const EVERY: Duration = Duration::from_secs(60);

/// The server at one minute.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub at: i64,
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    /// incoming, active, deferred, hold.
    pub queues: [usize; 4],
    pub store_bytes: u64,
    /// Open sessions per service.
    pub sessions: Vec<(String, i64)>,
}

pub const QUEUES: [(QueueName, &str); 4] = [
    (QueueName::Incoming, "incoming"),
    (QueueName::Active, "active"),
    (QueueName::Deferred, "deferred"),
    (QueueName::Hold, "hold"),
];

/// Reads the counters now.
pub fn sample(spool: &Spool, store: &dyn MailStore) -> Sample {
    let totals = &crate::metrics::get().totals;
    let mut queues = [0; 4];
    for (slot, (queue, _)) in queues.iter_mut().zip(QUEUES) {
        *slot = spool.list(queue).map_or(0, |l| l.len());
    }
    let sessions = totals
        .open
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    Sample {
        at: crate::rfc5322::now_unix(),
        received: totals.received.load(Ordering::Relaxed),
        delivered: totals.delivered.load(Ordering::Relaxed),
        deferred: totals.deferred.load(Ordering::Relaxed),
        bounced: totals.bounced.load(Ordering::Relaxed),
        queues,
        store_bytes: store
            .accounts()
            .map_or(0, |a| a.iter().map(|a| a.used_bytes).sum()),
        sessions,
    }
}

#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    pub fn all(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Samples every minute until `stop`.
    pub async fn run(
        self: Arc<Self>,
        spool: Arc<Spool>,
        store: Arc<dyn MailStore>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let (spool2, store2) = (spool.clone(), store.clone());
            if let Ok(s) =
                tokio::task::spawn_blocking(move || sample(&spool2, store2.as_ref())).await
            {
                self.push(s);
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// One line of a chart.
pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// An SVG line chart of `series` (all the same length), with its
/// highest value marked; values are drawn left (oldest) to right.
pub fn chart(title: &str, unit: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 140.0;
    const LEFT: f64 = 40.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let x = |i: usize| {
        LEFT + if n > 1 {
            (W - LEFT - 10.0) * i as f64 / (n - 1) as f64
        } else {
            0.0
        }
    };
    let y = |v: f64| 10.0 + (H - 30.0) * (1.0 - v / max);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"{LEFT}\" y=\"9\" font-size=\"10\" fill=\"#333\">{t} ({u}, highest {max:.0})</text>\
         <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#ccc\"/>\
         <text x=\"2\" y=\"14\" font-size=\"9\" fill=\"#666\">{max:.0}</text><text x=\"2\" y=\"{b}\" font-size=\"9\" fill=\"#666\">0</text>",
        t = crate::escape::xml(title),
        u = crate::escape::xml(unit),
        b = H - 20.0,
        r = W - 10.0,
    );
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        if !points.is_empty() {
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                s.color,
                points.join(" ")
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{}\" font-size=\"10\" fill=\"{}\">{}</text>",
            LEFT + 110.0 * k as f64,
            H - 5.0,
            s.color,
            crate::escape::xml(s.label)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The charts of the status page from the samples (and one taken now).
pub fn charts(samples: &[Sample]) -> Vec<String> {
    let per_minute = |f: fn(&Sample) -> u64| -> Vec<f64> {
        samples
            .windows(2)
            .map(|w| match w {
                [a, b] => f(b).saturating_sub(f(a)) as f64,
                _ => 0.0,
            })
            .collect()
    };
    let flow = chart(
        "Messages per minute",
        "messages",
        &[
            Series {
                label: "received",
                color: "#2858a8",
                values: per_minute(|s| s.received),
            },
            Series {
                label: "delivered",
                color: "#2a8a3a",
                values: per_minute(|s| s.delivered),
            },
            Series {
                label: "deferred",
                color: "#c08000",
                values: per_minute(|s| s.deferred),
            },
            Series {
                label: "bounced",
                color: "#b03030",
                values: per_minute(|s| s.bounced),
            },
        ],
    );
    let colors = ["#2858a8", "#2a8a3a", "#c08000", "#b03030"];
    let queue_series: Vec<Series<'_>> = QUEUES
        .iter()
        .enumerate()
        .map(|(i, (_, name))| Series {
            label: name,
            color: colors.get(i).copied().unwrap_or("#333"),
            values: samples
                .iter()
                .map(|s| s.queues.get(i).copied().unwrap_or(0) as f64)
                .collect(),
        })
        .collect();
    let queues = chart("Queue sizes", "messages", &queue_series);
    let mut services: Vec<String> = samples
        .iter()
        .flat_map(|s| s.sessions.iter().map(|(k, _)| k.clone()))
        .collect();
    services.sort();
    services.dedup();
    let palette = [
        "#2858a8", "#2a8a3a", "#c08000", "#b03030", "#7040a0", "#208080",
    ];
    let session_series: Vec<Series<'_>> = services
        .iter()
        .enumerate()
        .map(|(i, name)| Series {
            label: name,
            color: palette.get(i % palette.len()).copied().unwrap_or("#333"),
            values: samples
                .iter()
                .map(|s| {
                    s.sessions
                        .iter()
                        .find(|(k, _)| k == name)
                        .map_or(0.0, |(_, v)| *v as f64)
                })
                .collect(),
        })
        .collect();
    let sessions = chart("Connections", "open", &session_series);
    let store = chart(
        "Store size",
        "MiB",
        &[Series {
            label: "mail stored",
            color: "#2858a8",
            values: samples
                .iter()
                .map(|s| s.store_bytes as f64 / 1_048_576.0)
                .collect(),
        }],
    );
    vec![flow, queues, sessions, store]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_without_script() {
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                at: i,
                received: i as u64 * 3,
                delivered: i as u64 * 2,
                queues: [1, 0, i as usize, 0],
                sessions: vec![("imap".into(), i)],
                ..Sample::default()
            })
            .collect();
        let charts = charts(&samples);
        assert_eq!(charts.len(), 4);
        for c in &charts {
            assert!(
                c.starts_with("<svg") && c.ends_with("</svg>") && !c.contains("script"),
                "{c}"
            );
        }
        assert!(charts[0].contains("<polyline"), "{}", charts[0]);
        assert!(charts[2].contains(">imap<"), "{}", charts[2]);
    }
}
