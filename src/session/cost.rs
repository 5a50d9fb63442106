//! A session's cost, from the running totals its agents report.
//!
//! The `total_cost_usd` of a `result` is a **running total**, not the turn's cost: the Claude
//! CLI reports what its conversation has cost so far (`docs/claude-cli.md` §6.5:
//! read the latest value, never sum them), and a process started with `--resume` continues
//! from the conversation's saved total (§6.5, §7.1). The replay
//! runtime's scripts are recorded SDK `ResultMessage`s, whose `total_cost_usd` is that same CLI
//! figure, so they are read the same way (the reference scripts that carry a cost have a single
//! turn, where running total and turn cost agree).
//!
//! So a turn adds `reported − last reported`, where "last reported" starts, for each agent
//! process, at the session's stored total when it resumes the conversation and at 0 when it
//! starts a new one. A figure below the last one means the count started over (a resume that
//! fell back to a new conversation, a transcript the CLI could not find): it is added whole.
//! A result without a figure (an interrupted replay turn) adds nothing and moves no baseline.

/// The session's total and the baseline of its current agent process.
#[derive(Debug)]
pub(crate) struct CostMeter {
    /// The session's total cost in USD, as stored.
    total: f64,
    /// The running total the current agent reported last (or starts from).
    reported: f64,
}

impl CostMeter {
    /// A meter for a session whose stored total is `total` (claimed from Postgres).
    pub(crate) fn new(total: f64) -> CostMeter {
        CostMeter {
            total,
            reported: total,
        }
    }

    /// An agent process starts: `resumed` when it continues the session's conversation (its
    /// running total then goes on from the session's), else it counts from 0.
    pub(crate) fn agent_started(&mut self, resumed: bool) {
        self.reported = if resumed { self.total } else { 0.0 };
    }

    /// A turn ended with the agent's running total `reported` (if any): what the turn adds to
    /// the session's total.
    pub(crate) fn turn(&mut self, reported: Option<f64>) -> f64 {
        let Some(reported) = reported.filter(|c| c.is_finite() && *c >= 0.0) else {
            return 0.0;
        };
        let added = if reported >= self.reported {
            reported - self.reported
        } else {
            reported
        };
        self.reported = reported;
        self.total += added;
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_new_conversation_adds_the_differences_of_its_running_total() {
        let mut meter = CostMeter::new(0.0);
        meter.agent_started(false);
        let added: Vec<f64> = [0.001, 0.003, 0.006]
            .into_iter()
            .map(|c| meter.turn(Some(c)))
            .collect();
        assert!(close(added[0], 0.001) && close(added[1], 0.002) && close(added[2], 0.003));
        assert!(close(meter.total, 0.006));
    }

    #[test]
    fn a_resumed_conversation_continues_from_the_stored_total() {
        let mut meter = CostMeter::new(0.002);
        meter.agent_started(true);
        assert!(close(meter.turn(Some(0.003)), 0.001));
        assert!(close(meter.total, 0.003));
    }

    #[test]
    fn a_running_total_that_went_down_started_over_and_counts_whole() {
        // A resume that could not continue: the new process counts from 0.
        let mut meter = CostMeter::new(0.005);
        meter.agent_started(true);
        assert!(close(meter.turn(Some(0.001)), 0.001));
        assert!(close(meter.turn(Some(0.002)), 0.001));
        assert!(close(meter.total, 0.007));
    }

    #[test]
    fn a_new_conversation_in_an_old_session_adds_to_its_total() {
        let mut meter = CostMeter::new(0.005);
        meter.agent_started(false);
        assert!(close(meter.turn(Some(0.001)), 0.001));
        assert!(close(meter.total, 0.006));
    }

    #[test]
    fn results_without_a_figure_add_nothing_and_keep_the_baseline() {
        let mut meter = CostMeter::new(0.0);
        meter.agent_started(false);
        meter.turn(Some(0.002));
        for missing in [None, Some(f64::NAN), Some(-1.0)] {
            assert_eq!(meter.turn(missing), 0.0);
        }
        assert!(close(meter.turn(Some(0.003)), 0.001));
    }
}
