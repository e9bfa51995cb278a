//! `fusion plan`: choose the number of copies `B` and public samples `T` for
//! `R` queries with the paper's `Pi_Search` (Dong et al., NDSS 2023, section
//! IV-C, Fig. 4), and, given an accuracy threshold, with the slack-aware bound
//! of docs/DESIGN.md section 2 (a server may corrupt `s = T - ceil(delta T)` public
//! samples for free).

use std::process::ExitCode;

use clap::ArgGroup;
use fusion_core::Threshold;
use fusion_core::search::{
    self, DEFAULT_LAMBDA, DEFAULT_MIN_PUBLIC, MAX_LAMBDA, MAX_QUERIES, Plan, SearchParams,
    SlackPlan,
};
use serde::Serialize;

/// Arguments of `fusion plan`.
#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("mode").required(true).args(["queries", "table"])))]
pub struct Args {
    /// Number of private queries R (at least 1).
    #[arg(long, short = 'r', value_name = "R", value_parser = parse_queries, allow_negative_numbers = true)]
    queries: Option<u64>,
    /// Print paper-Table-I-style rows for R = 2^3, 2^5, 2^7, 2^9, 2^13, 2^19.
    #[arg(long, conflicts_with = "queries")]
    table: bool,
    /// Statistical security parameter: cheating succeeds with probability <= 2^-lambda.
    #[arg(
        long,
        value_name = "LAMBDA",
        default_value_t = DEFAULT_LAMBDA,
        value_parser = parse_lambda,
        allow_negative_numbers = true
    )]
    lambda: u32,
    /// Minimum number of public samples (the paper's beta).
    #[arg(long, value_name = "BETA", default_value_t = DEFAULT_MIN_PUBLIC, value_parser = parse_min_public)]
    min_public: u64,
    /// Accuracy threshold delta in (0, 1], e.g. 0.95 or 19/20 (parsed exactly):
    /// also report the slack-aware bound and the slack-aware optimal (B, T).
    #[arg(long, value_name = "D", value_parser = parse_threshold, allow_negative_numbers = true)]
    threshold: Option<Threshold>,
    /// Largest T the slack-aware search considers [default: max(1024, 2 T) for the paper's T].
    #[arg(long, value_name = "T", requires = "threshold")]
    max_public: Option<u64>,
    /// Print JSON instead of text (one object, or an array with --table).
    #[arg(long)]
    json: bool,
}

fn parse_queries(s: &str) -> Result<u64, String> {
    let r: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("R must be an integer >= 1, got {s:?}"))?;
    if r == 0 {
        return Err("R must be at least 1 (the number of private queries)".into());
    }
    if r > MAX_QUERIES {
        return Err(format!("R must be at most 2^40 = {MAX_QUERIES}"));
    }
    Ok(r)
}

fn parse_lambda(s: &str) -> Result<u32, String> {
    let l: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("lambda must be an integer, got {s:?}"))?;
    if l == 0 || l > MAX_LAMBDA {
        return Err(format!("lambda must be in 1..={MAX_LAMBDA}"));
    }
    Ok(l)
}

fn parse_min_public(s: &str) -> Result<u64, String> {
    let b: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("min-public must be an integer, got {s:?}"))?;
    if b > 1 << 40 {
        return Err("min-public must be at most 2^40".into());
    }
    Ok(b)
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse::<Threshold>().map_err(|e| match e {
        fusion_core::Error::InvalidParameter { reason, .. } => {
            format!("the threshold must be in (0, 1]: {reason}")
        }
        other => other.to_string(),
    })
}

/// One plan, with the JSON keys in the documented order.
#[derive(Debug, Serialize)]
struct Row {
    queries: u64,
    lambda: u32,
    min_public: u64,
    copies: u64,
    public: u64,
    total: u64,
    cost: f64,
    log2_paper_bound: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slack: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log2_slack_bound: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    slack_plan: Option<SlackColumns>,
}

/// The slack-aware optimum (`null` members when none exists with T <= max).
#[derive(Debug, Serialize)]
struct SlackColumns {
    slack_copies: Option<u64>,
    slack_public: Option<u64>,
    slack_cost: Option<f64>,
    #[serde(skip)]
    log2_bound: Option<f64>,
    #[serde(skip)]
    slack: Option<u64>,
    #[serde(skip)]
    max_public: u64,
}

fn row(args: &Args, queries: u64) -> Result<Row, fusion_core::Error> {
    let params = SearchParams::new(queries, args.lambda, args.min_public)?;
    let plan: Plan = search::search(&params)?;
    let mut row = Row {
        queries,
        lambda: args.lambda,
        min_public: args.min_public,
        copies: plan.copies,
        public: plan.public,
        total: plan.total(),
        cost: plan.cost_f64(),
        log2_paper_bound: plan.paper_bound().log2(),
        threshold: None,
        slack: None,
        log2_slack_bound: None,
        slack_plan: None,
    };
    if let Some(delta) = args.threshold {
        let (s, worst) = search::slack_bound_for(&plan, delta);
        let max_public = args
            .max_public
            .unwrap_or_else(|| search::default_max_public(&plan));
        let opt: Option<SlackPlan> = search::slack_search(&params, delta, max_public)?;
        row.threshold = Some(delta);
        row.slack = Some(s);
        row.log2_slack_bound = Some(worst.probability.log2());
        row.slack_plan = Some(SlackColumns {
            slack_copies: opt.as_ref().map(|o| o.plan.copies),
            slack_public: opt.as_ref().map(|o| o.plan.public),
            slack_cost: opt.as_ref().map(|o| o.plan.cost_f64()),
            log2_bound: opt.as_ref().map(|o| o.worst.probability.log2()),
            slack: opt.as_ref().map(|o| o.slack),
            max_public,
        });
    }
    Ok(row)
}

fn print_single(row: &Row) {
    println!(
        "Fusion plan for R = {} queries (lambda = {}, min public = {}; Pi_Search, Dong et al. Fig. 4)",
        row.queries, row.lambda, row.min_public
    );
    println!("  copies B                {}", row.copies);
    println!("  public T                {}", row.public);
    println!("  total N = RB + T        {}", row.total);
    println!("  amortised cost N/R      {}", fmt_cost(row.cost));
    println!(
        "  log2 paper bound        {:.2}   (R / C(N, B))",
        row.log2_paper_bound
    );
    let (Some(delta), Some(s), Some(lsb), Some(opt)) = (
        row.threshold,
        row.slack,
        row.log2_slack_bound,
        row.slack_plan.as_ref(),
    ) else {
        return;
    };
    println!("  threshold delta         {delta}");
    println!(
        "  slack s                 {s}   (T - ceil(delta T) public samples may be corrupted for free)"
    );
    let met = if lsb <= -f64::from(row.lambda) {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "  log2 slack-aware bound  {lsb:.2}   at the paper's (B, T) = ({}, {}): target 2^-{} {met}",
        row.copies, row.public, row.lambda
    );
    match (opt.slack_copies, opt.slack_public, opt.slack_cost) {
        (Some(b), Some(t), Some(c)) => println!(
            "  slack-aware optimum     B = {b}, T = {t}, N = {}, cost {}, s = {}, log2 bound {:.2}",
            row.queries * b + t,
            fmt_cost(c),
            opt.slack.unwrap_or_default(),
            opt.log2_bound.unwrap_or(f64::NAN)
        ),
        _ => println!(
            "  slack-aware optimum     none with B <= {} and T <= {}: at this threshold \
             the free public corruptions keep the bound above 2^-{}",
            row.lambda.max(2),
            opt.max_public,
            row.lambda
        ),
    }
}

fn print_table(rows: &[Row]) {
    let with_slack = rows.first().is_some_and(|r| r.threshold.is_some());
    if let Some(r) = rows.first() {
        print!(
            "Pi_Search, lambda = {}, min public = {} (cf. Dong et al., NDSS 2023, Table I)",
            r.lambda, r.min_public
        );
        if let Some(d) = r.threshold {
            print!("; slack-aware columns for threshold {d}");
        }
        println!();
    }
    print!(
        "{:>8} {:>4} {:>6} {:>10} {:>8} {:>11}",
        "R", "B", "T", "N", "N/R", "log2 bound"
    );
    if with_slack {
        print!(
            " | {:>3} {:>11} | {:>4} {:>6} {:>8}",
            "s", "log2 slack", "B*", "T*", "N*/R"
        );
    }
    println!();
    for r in rows {
        let e = r.queries.trailing_zeros();
        let name = if r.queries.is_power_of_two() {
            format!("2^{e}")
        } else {
            r.queries.to_string()
        };
        print!(
            "{:>8} {:>4} {:>6} {:>10} {:>8.3} {:>11.2}",
            name, r.copies, r.public, r.total, r.cost, r.log2_paper_bound
        );
        if let (Some(s), Some(l), Some(o)) = (r.slack, r.log2_slack_bound, r.slack_plan.as_ref()) {
            print!(" | {s:>3} {l:>11.2} | ");
            match (o.slack_copies, o.slack_public, o.slack_cost) {
                (Some(b), Some(t), Some(c)) => print!("{b:>4} {t:>6} {c:>8.3}"),
                _ => print!("{:>4} {:>6} {:>8}", "-", "-", "-"),
            }
        }
        println!();
    }
}

fn fmt_cost(c: f64) -> String {
    let s = format!("{c:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Runs `fusion plan`.
pub fn run(args: Args) -> ExitCode {
    let queries: Vec<u64> = match args.queries {
        Some(r) => vec![r],
        None => [3u32, 5, 7, 9, 13, 19].iter().map(|e| 1u64 << e).collect(),
    };
    let mut rows = Vec::with_capacity(queries.len());
    for r in queries {
        match row(&args, r) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("fusion plan: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.json {
        let text = if args.table {
            serde_json::to_string_pretty(&rows)
        } else {
            serde_json::to_string_pretty(&rows[0])
        };
        match text {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("fusion plan: cannot render JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if args.table {
        print_table(&rows);
    } else {
        print_single(&rows[0]);
    }
    ExitCode::SUCCESS
}
