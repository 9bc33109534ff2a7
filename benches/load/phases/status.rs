//! Phase 7, status: `GET /api/status`, a baseline for the HTTP stack; also the check that a
//! restarted server answers.

use serde_json::Value;

use crate::client::{exchange, hammer, http_client};
use crate::measure::{Measurement, Monitor, measure};

const STATUS_CONCURRENCY: usize = 16;
const STATUS_REQUESTS: usize = 2_000;

/// `GET /api/status` at c=16: the cost of the HTTP stack and one counter read.
pub(crate) async fn status_phase(
    base: &str,
    monitor: &Monitor,
    total: usize,
) -> Result<Measurement, String> {
    println!("status:");
    let (client, url) = (http_client(), format!("{base}/api/status"));
    let work = hammer(STATUS_CONCURRENCY, STATUS_REQUESTS, move |_, _| {
        let request = client.get(&url);
        async move {
            let (latency, answer) = exchange(request).await?;
            check_status_answer(&answer, total)?;
            Ok((latency, ()))
        }
    });
    let (m, _) = measure(monitor, "status".to_string(), STATUS_CONCURRENCY, work).await?;
    Ok(m)
}

/// One status request: the server answers and counts every image.
pub(crate) async fn check_status(base: &str, total: usize) -> Result<(), String> {
    let (_, answer) = exchange(http_client().get(format!("{base}/api/status"))).await?;
    check_status_answer(&answer, total)
}

fn check_status_answer(answer: &Value, total: usize) -> Result<(), String> {
    if answer["status"] != "running" || answer["total_images"] != total as u64 {
        return Err(format!(
            "unexpected status (total should be {total}): {answer}"
        ));
    }
    Ok(())
}
