//! Two people talking through the real `passage` CLI, usually over a
//! [`LinkProxy`](passage_testkit::LinkProxy): invite → accept → connected, then
//! messages each way, each phase bounded by a deadline, with what arrived recorded in
//! order. The bad-link tests assert on the [`ConversationReport`]; the bad-link
//! benchmark prints it. Nothing here panics: a phase that fails says why.
//!
//! ```text
//!  connect   alice invite ─► bob accept ─► alice receive … bob receive … (both connected)
//!  to_bob    [bob: passage run] alice send ×N (hook at N/2) ─► bob receives N
//!  to_alice  bob send ×N ─► alice receive … N
//! ```

use std::time::{Duration, Instant};

use passage_testkit::LinkCounters;
use serde_json::Value;

use crate::cli::{CLI_LIMIT, CliClient, CliOutput, run_limited};

/// `--wait` of each `passage receive` in a phase.
const RECEIVE_WAIT_SECS: &str = "2";

/// How long a phase reads `passage run`'s output at once before checking the deadline.
const RUN_READ: Duration = Duration::from_millis(500);

/// The contact names each side gives the other.
const ALICE: &str = "Alice";
const BOB: &str = "Bob";

/// How a conversation goes.
pub struct ConversationPlan<'a> {
    /// Messages each way.
    pub messages: usize,
    /// Whether Bob receives Alice's messages with `passage run` (else `receive`).
    pub bob_runs: bool,
    /// Longest time for each phase.
    pub phase_limit: Duration,
    /// Global arguments for every invocation (`--transport quic`).
    pub global: Vec<String>,
    /// Called once, after Alice has sent half of her messages (turn the link dark).
    pub midway: Option<Box<dyn FnOnce() + 'a>>,
    /// The link's counters, read at each phase's start and end.
    pub counters: Option<Box<dyn Fn() -> LinkCounters + 'a>>,
}

impl std::fmt::Debug for ConversationPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationPlan")
            .field("messages", &self.messages)
            .field("bob_runs", &self.bob_runs)
            .field("phase_limit", &self.phase_limit)
            .finish_non_exhaustive()
    }
}

/// What one phase came to.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// How long it took, or why it failed (and after how long).
    pub outcome: Option<Result<Duration, String>>,
    /// The link's counts during the phase.
    pub link: LinkCounters,
    /// CLI invocations made (each opens its own connection).
    pub invocations: u64,
    /// Message texts received, in the order they were shown.
    pub received: Vec<String>,
}

impl Phase {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    /// Connections made beyond one per invocation (TCP connections plus UDP flows,
    /// minus invocations): the reconnections and fallback attempts of the phase.
    pub fn reconnects(&self) -> u64 {
        (self.link.connections + self.link.udp_flows).saturating_sub(self.invocations)
    }
}

/// What a whole conversation came to.
#[derive(Debug, Clone, Default)]
pub struct ConversationReport {
    /// Invite → accept → both connected.
    pub connect: Phase,
    /// Alice's messages to Bob.
    pub to_bob: Phase,
    /// Bob's messages to Alice.
    pub to_alice: Phase,
}

/// The texts of a plan's messages from `from`, in order.
pub fn expected_texts(from: &str, messages: usize) -> Vec<String> {
    (1..=messages)
        .map(|n| format!("message {n:02} from {from}"))
        .collect()
}

/// Runs the conversation between two fresh profiles (already `init`ed on the relay
/// address the link leads to). Stops at the first phase that fails.
pub fn converse(
    alice: &CliClient,
    bob: &CliClient,
    mut plan: ConversationPlan<'_>,
) -> ConversationReport {
    let mut report = ConversationReport::default();
    let counters = plan.counters.take();
    let read = || counters.as_ref().map(|c| c()).unwrap_or_default();

    let before = read();
    let mut phase = Phase::default();
    phase.outcome = Some(connect(alice, bob, &plan, &mut phase));
    phase.link = read().minus(&before);
    report.connect = phase;
    if !report.connect.succeeded() {
        return report;
    }

    let before = read();
    let mut phase = Phase::default();
    let midway = plan.midway.take();
    phase.outcome = Some(deliver(
        alice,
        bob,
        ALICE,
        BOB,
        plan.bob_runs,
        midway,
        &plan,
        &mut phase,
    ));
    phase.link = read().minus(&before);
    report.to_bob = phase;
    if !report.to_bob.succeeded() {
        return report;
    }

    let before = read();
    let mut phase = Phase::default();
    phase.outcome = Some(deliver(
        bob, alice, BOB, ALICE, false, None, &plan, &mut phase,
    ));
    phase.link = read().minus(&before);
    report.to_alice = phase;
    report
}

/// A phase's clock and its invocations.
struct Clock {
    started: Instant,
    deadline: Instant,
}

impl Clock {
    fn new(limit: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + limit,
        }
    }

    fn left(&self) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn fail(&self, what: impl std::fmt::Display) -> String {
        format!(
            "{what} (after {:.1} s)",
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Runs `passage GLOBAL ARGS` within what is left of the phase.
fn invoke(
    who: &CliClient,
    args: &[&str],
    plan: &ConversationPlan<'_>,
    clock: &Clock,
    phase: &mut Phase,
) -> Result<CliOutput, String> {
    let left = clock
        .left()
        .ok_or_else(|| clock.fail("the phase's time ran out"))?;
    let mut all: Vec<&str> = plan.global.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    phase.invocations += 1;
    let out = run_limited(who.command(&all), left.min(CLI_LIMIT)).map_err(|e| clock.fail(e))?;
    if out.success() {
        Ok(out)
    } else {
        // The subcommand only: an invitation link in the arguments is a secret.
        Err(clock.fail(format!(
            "`passage {}` failed: {}",
            args.first().copied().unwrap_or_default(),
            out.stderr.trim()
        )))
    }
}

/// The `--json` objects of an output (lines that are not JSON are skipped).
fn objects(out: &CliOutput) -> Vec<Value> {
    out.json_lines()
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

fn is(object: &Value, kind: &str, contact: &str) -> bool {
    object["type"] == kind && object["contact"] == contact
}

fn connect(
    alice: &CliClient,
    bob: &CliClient,
    plan: &ConversationPlan<'_>,
    phase: &mut Phase,
) -> Result<Duration, String> {
    let clock = Clock::new(plan.phase_limit);
    let link = invoke(alice, &["invite", "--name", BOB], plan, &clock, phase)?.stdout;
    invoke(
        bob,
        &["accept", link.trim(), "--name", ALICE],
        plan,
        &clock,
        phase,
    )?;
    for (who, other) in [(alice, BOB), (bob, ALICE)] {
        loop {
            let out = invoke(
                who,
                &["receive", "--wait", RECEIVE_WAIT_SECS, "--json"],
                plan,
                &clock,
                phase,
            );
            // A failed receive (the link cut it) is tried again within the phase.
            if let Ok(out) = out
                && objects(&out).iter().any(|o| is(o, "connected", other))
            {
                break;
            }
            if clock.left().is_none() {
                return Err(clock.fail(format!("{other} never showed as connected")));
            }
        }
    }
    Ok(clock.started.elapsed())
}

/// `from` sends the plan's messages to `to` (who names the sender `from_name`);
/// `to` receives them with `passage run` or `passage receive`.
#[allow(clippy::too_many_arguments)]
fn deliver(
    from: &CliClient,
    to: &CliClient,
    from_name: &str,
    to_name: &str,
    with_run: bool,
    mut midway: Option<Box<dyn FnOnce() + '_>>,
    plan: &ConversationPlan<'_>,
    phase: &mut Phase,
) -> Result<Duration, String> {
    let clock = Clock::new(plan.phase_limit);
    let texts = expected_texts(from_name, plan.messages);
    let mut running = if with_run {
        let mut args: Vec<&str> = plan.global.iter().map(String::as_str).collect();
        args.extend(["run", "--json", "--lock-after", "off"]);
        phase.invocations += 1;
        Some(to.spawn(&args).map_err(|e| clock.fail(e))?)
    } else {
        None
    };
    let mut take = |objects: Vec<Value>, phase: &mut Phase| {
        for object in objects {
            if is(&object, "message", from_name)
                && let Some(text) = object["text"].as_str()
            {
                phase.received.push(text.to_owned());
            }
        }
    };
    let drain_run = |run: &crate::cli::CliProcess,
                     phase: &mut Phase,
                     wait: Duration,
                     take: &mut dyn FnMut(Vec<Value>, &mut Phase)| {
        while let Some(line) = run.next_line(wait) {
            if let Ok(object) = serde_json::from_str::<Value>(&line) {
                take(vec![object], phase);
            }
        }
    };
    for (n, text) in texts.iter().enumerate() {
        if n == plan.messages / 2
            && let Some(hook) = midway.take()
        {
            hook();
        }
        // `send` keeps a message it could not hand over queued (and exits 0); a
        // failure here is a failure to even queue it.
        invoke(
            from,
            &["send", to_name, text, "--json"],
            plan,
            &clock,
            phase,
        )?;
        if let Some(run) = &running {
            drain_run(run, phase, Duration::ZERO, &mut take);
        }
    }
    loop {
        let done = texts.iter().all(|t| phase.received.contains(t));
        if done {
            break;
        }
        if clock.left().is_none() {
            let missing = texts.iter().filter(|t| !phase.received.contains(t)).count();
            return Err(clock.fail(format!(
                "{missing} of {} messages never arrived",
                texts.len()
            )));
        }
        // The sender hands over what it still holds queued (and takes receipts).
        let _ = invoke(
            from,
            &["receive", "--wait", "1", "--json"],
            plan,
            &clock,
            phase,
        );
        match &mut running {
            Some(run) => {
                if !run.is_running() {
                    return Err(clock.fail("`passage run` stopped"));
                }
                drain_run(run, phase, RUN_READ, &mut take);
            }
            None => {
                if let Ok(out) = invoke(
                    to,
                    &["receive", "--wait", RECEIVE_WAIT_SECS, "--json"],
                    plan,
                    &clock,
                    phase,
                ) {
                    take(objects(&out), phase);
                }
            }
        }
    }
    let elapsed = clock.started.elapsed();
    if let Some(run) = running.take() {
        let _ = run.kill();
    }
    Ok(elapsed)
}
