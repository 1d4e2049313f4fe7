//! Feasibility and planning: which learners may share cohorts, and how
//! many cohorts of which sizes.
//!
//! Language and time zone split the pool into *blocks* whose learners can
//! be mixed freely; the company cap then only limits how each block is
//! split. Deciding this up front gives exact, explainable refusals ("the 7
//! learners at UTC+08:00 are too few for a cohort") instead of a search
//! that silently fails.
//!
//! Time zones: each learner has an offset at each of the formation's
//! instants (one instant, or the instants of the program's dates where an
//! offset changes, see [`offsets`](super::offsets)). Learners are sorted
//! by their offsets (lexicographically) and the sorted order is cut into
//! windows whose spread, the widest at one instant, is within the allowed
//! one, by dynamic programming. With one instant this is exact for sizes
//! and spread: if any partition exists then one exists whose cohorts are
//! contiguous in offset order (swap members of interleaved cohorts). With
//! several instants it stays exact while zones keep their order through
//! the program's dates (London stays behind Paris and ahead of Sao Paulo),
//! and is always safe: every window holds. We keep windows as large as
//! possible so the balance search has the most freedom.

use std::collections::BTreeMap;

use super::{CohortConstraints, CohortError, CohortLearner, Constraint};

/// A set of learners that may be mixed freely, and the sizes of the
/// cohorts it will be split into.
#[derive(Debug, Clone)]
pub struct Block {
    /// Population indices of the block's learners.
    pub learners: Vec<usize>,
    /// Sizes of its cohorts (as even as possible), summing to the block size.
    pub sizes: Vec<usize>,
    /// Where the block comes from, for messages ("" when there is one).
    pub label: String,
}

/// The outcome of planning: blocks and their cohort sizes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Blocks in a deterministic order (language, then offset).
    pub blocks: Vec<Block>,
    /// Learners no cohort can take (a language or time-zone group too small
    /// to fill one), with the rule and the reason: the others are formed.
    pub unplaced: Vec<(usize, Constraint, String)>,
}

/// Whether `n` learners can be split into cohorts within the size bounds.
pub fn representable(n: usize, cons: &CohortConstraints) -> bool {
    n > 0 && n.div_ceil(cons.max_size) * cons.min_size <= n
}

/// Learners to add to `n` to make it representable.
fn deficit(n: usize, cons: &CohortConstraints) -> usize {
    (n..).find(|&m| representable(m, cons)).unwrap_or(n) - n
}

/// Formats minutes as a UTC offset such as `UTC+05:30`.
pub fn fmt_offset(minutes: i64) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Splits `pool` into blocks and decides cohort counts and sizes, or
/// explains which constraint makes that impossible.
pub fn plan_blocks(
    learners: &[CohortLearner],
    pool: &[usize],
    cons: &CohortConstraints,
    locked: usize,
) -> Result<Plan, CohortError> {
    if pool.is_empty() {
        if let Some(t) = cons.target_cohorts
            && t != locked
        {
            return Err(CohortError::Infeasible {
                constraint: Constraint::CohortCount,
                reason: format!(
                    "{t} cohorts requested but no learner is left to form new ones ({locked} locked)"
                ),
            });
        }
        return Ok(Plan::default());
    }
    let mut unplaced = Vec::new();
    let groups = language_groups(learners, pool, cons, &mut unplaced);
    let mut blocks = Vec::new();
    for (label, members) in groups {
        for (seg_label, seg) in tz_segments(learners, &members, cons, &label, &mut unplaced) {
            blocks.push(Block {
                learners: seg,
                sizes: Vec::new(),
                label: seg_label,
            });
        }
    }
    if blocks.is_empty() {
        // Nobody can be placed: the first reason is the refusal.
        let (_, constraint, reason) = unplaced
            .into_iter()
            .next()
            .expect("a non-empty pool is placed or unplaced");
        return Err(CohortError::Infeasible { constraint, reason });
    }
    if blocks.len() == 1 {
        blocks[0].label.clear();
    }
    let counts = cohort_counts(&blocks, cons, locked)?;
    for (b, k) in blocks.iter_mut().zip(counts) {
        b.sizes = choose_sizes(learners, b, k, cons)?;
    }
    Ok(Plan { blocks, unplaced })
}

/// Marks `members` unplaced for `reason`.
fn leave_out(
    unplaced: &mut Vec<(usize, Constraint, String)>,
    members: &[usize],
    constraint: Constraint,
    reason: &str,
) {
    unplaced.extend(members.iter().map(|&i| (i, constraint, reason.to_string())));
}

/// Groups by language; learners without one fill groups that are too small,
/// then join the largest group. A group that cannot fill a cohort even so
/// is left out (`unplaced`), so that the others are formed.
fn language_groups(
    learners: &[CohortLearner],
    pool: &[usize],
    cons: &CohortConstraints,
    unplaced: &mut Vec<(usize, Constraint, String)>,
) -> Vec<(String, Vec<usize>)> {
    if !cons.single_language {
        return vec![(String::new(), pool.to_vec())];
    }
    let mut by_lang: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut wild = Vec::new();
    for &i in pool {
        match learners[i].language.as_str() {
            "" => wild.push(i),
            l => by_lang.entry(l).or_default().push(i),
        }
    }
    if by_lang.len() <= 1 {
        // One language (or none known): language cannot be the obstacle.
        return vec![(String::new(), pool.to_vec())];
    }
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    // Largest groups first: they are the likeliest to be filled.
    let mut by_size: Vec<(&str, Vec<usize>)> = by_lang.into_iter().collect();
    by_size.sort_by_key(|(l, m)| (std::cmp::Reverse(m.len()), *l));
    for (l, mut g) in by_size {
        let label = format!("language {l:?}");
        let need = deficit(g.len(), cons);
        if need > wild.len() {
            let reason = format!(
                "{label} has {} learners, which cannot fill cohorts of {}..{} \
                 ({need} more needed) and only {} learners of unknown language are left to join",
                g.len(),
                cons.min_size,
                cons.max_size,
                wild.len()
            );
            leave_out(unplaced, &g, Constraint::Language, &reason);
            continue;
        }
        g.extend(wild.drain(wild.len() - need..));
        groups.push((label, g));
    }
    groups.sort();
    if !wild.is_empty() {
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&g| std::cmp::Reverse(groups[g].1.len()));
        match order
            .into_iter()
            .find(|&g| representable(groups[g].1.len() + wild.len(), cons))
        {
            Some(g) => groups[g].1.append(&mut wild),
            None if groups.is_empty() && representable(wild.len(), cons) => {
                groups.push((String::new(), std::mem::take(&mut wild)));
            }
            None => {
                let reason = format!(
                    "{} learners of unknown language fit no language group within cohorts of {}..{}",
                    wild.len(),
                    cons.min_size,
                    cons.max_size
                );
                leave_out(unplaced, &wild, Constraint::Size, &reason);
            }
        }
    }
    groups
}

/// Cuts a language group into time-zone windows whose sizes fit the bounds;
/// the learners of a window that cannot fill a cohort (too few within the
/// spread, too few of unknown time zone to join) are left out (`unplaced`).
fn tz_segments(
    learners: &[CohortLearner],
    members: &[usize],
    cons: &CohortConstraints,
    label: &str,
    unplaced: &mut Vec<(usize, Constraint, String)>,
) -> Vec<(String, Vec<usize>)> {
    let mut known: Vec<(&[i32], usize)> = Vec::new();
    let mut unknown: Vec<usize> = Vec::new();
    for &i in members {
        match learners[i].utc_offsets.as_slice() {
            [] => unknown.push(i),
            o => known.push((o, i)),
        }
    }
    known.sort_unstable();
    let offs = Offsets::new(known.iter().map(|k| k.0).collect());
    let spread = cons.max_tz_spread_minutes();
    if known.is_empty() || offs.spread(0, known.len()) <= spread {
        if !representable(members.len(), cons) {
            let reason = format!(
                "the {} learners{} cannot fill cohorts of {}..{}",
                members.len(),
                within(label),
                cons.min_size,
                cons.max_size
            );
            leave_out(unplaced, members, Constraint::Size, &reason);
            return Vec::new();
        }
        return vec![(label.to_string(), members.to_vec())];
    }
    let n = known.len();
    // First try cuts between distinct offsets only (few states), then any
    // position, which can split one offset between two windows.
    let mut cuts: Vec<usize> = (0..=n)
        .filter(|&p| p == 0 || p == n || offs.rows[p] != offs.rows[p - 1])
        .collect();
    let mut best = segment_dp(&offs, &cuts, spread, cons);
    if best.0 > unknown.len() {
        cuts = (0..=n).collect();
        best = segment_dp(&offs, &cuts, spread, cons);
    }
    let (total_deficit, mut bounds) = best;
    if total_deficit > unknown.len() {
        // Leave out the windows that lack companions; the others form.
        let short: Vec<(usize, usize)> = bounds
            .iter()
            .copied()
            .filter(|&(a, b)| deficit(b - a, cons) > 0)
            .collect();
        for &(a, b) in &short {
            let reason = format!(
                "learners{} span {}, and no cut into windows of at most {} h gives groups \
                 that fill cohorts of {}..{}: the {} learners at {} lack {} companions \
                 within {} h, with {} learners of unknown time zone needed in all but {} available",
                within(label),
                offs.envelope(0, n),
                cons.max_tz_spread_hours,
                cons.min_size,
                cons.max_size,
                b - a,
                offs.envelope(a, b),
                deficit(b - a, cons),
                cons.max_tz_spread_hours,
                total_deficit,
                unknown.len()
            );
            let left: Vec<usize> = known[a..b].iter().map(|k| k.1).collect();
            leave_out(unplaced, &left, Constraint::TimezoneSpread, &reason);
        }
        bounds.retain(|&(a, b)| deficit(b - a, cons) == 0);
    }
    let mut segs: Vec<(String, Vec<usize>)> = bounds
        .iter()
        .map(|&(a, b)| {
            let l = format!(
                "{}{}{}",
                label,
                if label.is_empty() { "" } else { ", " },
                offs.envelope(a, b)
            );
            (l, known[a..b].iter().map(|k| k.1).collect::<Vec<_>>())
        })
        .collect();
    place_unknown(&mut segs, unknown, label, cons, unplaced);
    segs
}

/// Gives each window the learners of unknown time zone it lacks, then the
/// rest to the largest window that can take them (or a window of their
/// own); those that fit nowhere are left out.
fn place_unknown(
    segs: &mut Vec<(String, Vec<usize>)>,
    mut unknown: Vec<usize>,
    label: &str,
    cons: &CohortConstraints,
    unplaced: &mut Vec<(usize, Constraint, String)>,
) {
    for (_, s) in segs.iter_mut() {
        let need = deficit(s.len(), cons);
        s.extend(unknown.drain(unknown.len() - need..));
    }
    if !unknown.is_empty() {
        let mut order: Vec<usize> = (0..segs.len()).collect();
        order.sort_by_key(|&g| std::cmp::Reverse(segs[g].1.len()));
        match order
            .into_iter()
            .find(|&g| representable(segs[g].1.len() + unknown.len(), cons))
        {
            Some(g) => segs[g].1.append(&mut unknown),
            None if segs.is_empty() && representable(unknown.len(), cons) => {
                segs.push((label.to_string(), std::mem::take(&mut unknown)));
            }
            None => {
                let reason = format!(
                    "{} learners of unknown time zone{} fit no time-zone window within cohorts of {}..{}",
                    unknown.len(),
                    within(label),
                    cons.min_size,
                    cons.max_size
                );
                leave_out(unplaced, &unknown, Constraint::Size, &reason);
            }
        }
    }
}

/// ` in <label>`, or nothing for an empty label.
fn within(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(" in {label}")
    }
}

/// Learners' offset lists in sorted order, with what the window search
/// asks of them.
struct Offsets<'a> {
    /// One list per learner, sorted, all of the same length.
    rows: Vec<&'a [i32]>,
    /// `next[p]`: the first position after `p` with another list, so
    /// that equal lists are looked at once.
    next: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(rows: Vec<&'a [i32]>) -> Self {
        let mut next = vec![rows.len(); rows.len()];
        for p in (0..rows.len().saturating_sub(1)).rev() {
            next[p] = if rows[p + 1] != rows[p] {
                p + 1
            } else {
                next[p + 1]
            };
        }
        Offsets { rows, next }
    }

    /// Widens `lo`/`hi` (per instant) by the distinct lists in `[a, b)`.
    fn widen(&self, lo: &mut [i32], hi: &mut [i32], a: usize, b: usize) {
        let mut p = a;
        while p < b {
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(self.rows[p]) {
                *l = (*l).min(v);
                *h = (*h).max(v);
            }
            p = self.next[p];
        }
    }

    /// Widest spread at one instant of positions `[a, b)`, in minutes.
    fn spread(&self, a: usize, b: usize) -> i64 {
        let t = self.rows[a].len();
        let (mut lo, mut hi) = (vec![i32::MAX; t], vec![i32::MIN; t]);
        self.widen(&mut lo, &mut hi, a, b);
        widest(&lo, &hi)
    }

    /// Lowest and highest offsets of positions `[a, b)` at any instant,
    /// as `UTC-03:00..UTC+01:00`, for messages.
    fn envelope(&self, a: usize, b: usize) -> String {
        let t = self.rows[a].len();
        let (mut lo, mut hi) = (vec![i32::MAX; t], vec![i32::MIN; t]);
        self.widen(&mut lo, &mut hi, a, b);
        let low = lo.iter().copied().min().unwrap_or(0);
        let high = hi.iter().copied().max().unwrap_or(0);
        format!("{}..{}", fmt_offset(low.into()), fmt_offset(high.into()))
    }
}

/// Largest `hi - lo` over instants, in minutes.
fn widest(lo: &[i32], hi: &[i32]) -> i64 {
    lo.iter()
        .zip(hi)
        .map(|(&l, &h)| i64::from(h) - i64::from(l))
        .max()
        .unwrap_or(0)
}

/// Minimises (missing learners, number of windows) over cuts of the sorted
/// offsets at the allowed positions; returns the total deficit and the
/// windows as `[a, b)` ranges.
fn segment_dp(
    offs: &Offsets<'_>,
    cuts: &[usize],
    spread: i64,
    cons: &CohortConstraints,
) -> (usize, Vec<(usize, usize)>) {
    let m = cuts.len();
    let t = offs.rows.first().map_or(0, |r| r.len());
    let (mut lo, mut hi) = (vec![0; t], vec![0; t]);
    let mut dp = vec![(usize::MAX, usize::MAX); m];
    let mut parent = vec![0usize; m];
    dp[0] = (0, 0);
    for b in 1..m {
        lo.fill(i32::MAX);
        hi.fill(i32::MIN);
        for a in (0..b).rev() {
            let (pa, pb) = (cuts[a], cuts[b]);
            // Extend the window [pa, pb) leftwards by [pa, cuts[a + 1]).
            offs.widen(&mut lo, &mut hi, pa, cuts[a + 1]);
            if widest(&lo, &hi) > spread {
                break;
            }
            if dp[a].0 == usize::MAX {
                continue;
            }
            let cand = (dp[a].0 + deficit(pb - pa, cons), dp[a].1 + 1);
            if cand < dp[b] {
                dp[b] = cand;
                parent[b] = a;
            }
        }
    }
    let mut bounds = Vec::new();
    let mut b = m - 1;
    while b > 0 {
        let a = parent[b];
        bounds.push((cuts[a], cuts[b]));
        b = a;
    }
    bounds.reverse();
    (dp[m - 1].0, bounds)
}

/// Number of new cohorts per block: the target spread over blocks, or
/// cohorts of about the middle of the size bounds.
fn cohort_counts(
    blocks: &[Block],
    cons: &CohortConstraints,
    locked: usize,
) -> Result<Vec<usize>, CohortError> {
    let lo: Vec<usize> = blocks
        .iter()
        .map(|b| b.learners.len().div_ceil(cons.max_size))
        .collect();
    let hi: Vec<usize> = blocks
        .iter()
        .map(|b| b.learners.len() / cons.min_size)
        .collect();
    match cons.target_cohorts {
        None => {
            let mid = (cons.min_size + cons.max_size) as f64 / 2.0;
            Ok(blocks
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    ((b.learners.len() as f64 / mid).round() as usize).clamp(lo[i], hi[i])
                })
                .collect())
        }
        Some(target) => {
            let (slo, shi): (usize, usize) = (lo.iter().sum(), hi.iter().sum());
            let n: usize = blocks.iter().map(|b| b.learners.len()).sum();
            let wanted = target
                .checked_sub(locked)
                .filter(|w| (slo..=shi).contains(w));
            let Some(wanted) = wanted else {
                return Err(CohortError::Infeasible {
                    constraint: Constraint::CohortCount,
                    reason: format!(
                        "{target} cohorts requested, {locked} of them locked; the other {n} \
                         learners{} need between {slo} and {shi} new cohorts of {}..{}",
                        if blocks.len() > 1 {
                            format!(
                                ", split into {} groups by language and time zone,",
                                blocks.len()
                            )
                        } else {
                            String::new()
                        },
                        cons.min_size,
                        cons.max_size
                    ),
                });
            };
            let mut k = lo.clone();
            for _ in slo..wanted {
                let g = (0..blocks.len())
                    .filter(|&g| k[g] < hi[g])
                    .max_by(|&x, &y| {
                        let fx = blocks[x].learners.len() as f64 / k[x].max(1) as f64;
                        let fy = blocks[y].learners.len() as f64 / k[y].max(1) as f64;
                        fx.total_cmp(&fy).then(y.cmp(&x))
                    })
                    .expect("sum of upper bounds covers the target");
                k[g] += 1;
            }
            Ok(k)
        }
    }
}

/// Even sizes for `k` cohorts of `n` learners.
pub fn even_sizes(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|j| n / k + usize::from(j < n % k)).collect()
}

/// Picks cohort sizes for a block so the company caps can hold: the
/// planned count if it works, else (without a target) the nearest count
/// that does; otherwise explains the clash.
fn choose_sizes(
    learners: &[CohortLearner],
    block: &Block,
    k: usize,
    cons: &CohortConstraints,
) -> Result<Vec<usize>, CohortError> {
    let n = block.learners.len();
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &block.learners {
        let c = learners[i].company.as_str();
        if !c.is_empty() {
            *per.entry(c).or_default() += 1;
        }
    }
    let mut companies: Vec<(&str, usize)> = per.into_iter().collect();
    companies.sort_by_key(|&(c, m)| (std::cmp::Reverse(m), c));
    let Err(first) = company_check(&companies, n, &even_sizes(n, k), cons, &block.label) else {
        return Ok(even_sizes(n, k));
    };
    if cons.target_cohorts.is_none() {
        let (lo, hi) = (n.div_ceil(cons.max_size), n / cons.min_size);
        let mut ks: Vec<usize> = (lo..=hi).filter(|&x| x != k).collect();
        ks.sort_by_key(|&x| x.abs_diff(k));
        for x in ks {
            let sizes = even_sizes(n, x);
            if company_check(&companies, n, &sizes, cons, &block.label).is_ok() {
                return Ok(sizes);
            }
        }
    }
    Err(first)
}

/// Exact test that companies of the given sizes can be spread over cohorts
/// of the given sizes under the cap: by max-flow/min-cut (Gale–Ryser), the
/// `t` largest companies must fit `sum_j min(s_j, t * cap_j)` for every `t`.
pub fn company_check(
    companies: &[(&str, usize)],
    n: usize,
    sizes: &[usize],
    cons: &CohortConstraints,
    label: &str,
) -> Result<(), CohortError> {
    let caps: Vec<usize> = sizes.iter().map(|&s| cons.company_cap(s)).collect();
    let mut prefix = 0usize;
    for (t, &(name, m)) in companies.iter().enumerate() {
        prefix += m;
        let t1 = t + 1;
        let room: usize = sizes.iter().zip(&caps).map(|(&s, &c)| s.min(t1 * c)).sum();
        if prefix <= room {
            continue;
        }
        let where_ = if label.is_empty() {
            String::new()
        } else {
            format!(" ({label})")
        };
        let (smin, smax) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        let pct = 100.0 * cons.max_company_share;
        let reason = if t1 == 1 {
            let per_cohort_max = cons.company_cap(cons.max_size).max(1);
            let needed = m.div_ceil(per_cohort_max);
            let allowed = n / cons.min_size;
            let mut r = format!(
                "company {name:?} has {m} of the {n} learners{where_} ({:.1}%); with a cap of \
                 {pct:.0}% per cohort, {} cohorts of {smin}..{smax} hold at most {room} of them",
                100.0 * m as f64 / n as f64,
                sizes.len()
            );
            if needed > allowed {
                r.push_str(&format!(
                    "; at least {needed} cohorts would be needed (at most {per_cohort_max} of them \
                     per cohort of {}), but the size bounds allow at most {allowed}",
                    cons.max_size
                ));
            } else if m as f64 > cons.max_company_share * n as f64 {
                r.push_str(&format!(
                    "; no split can work, as {:.1}% is above the cap",
                    100.0 * m as f64 / n as f64
                ));
            }
            r
        } else {
            let names: Vec<String> = companies[..t1]
                .iter()
                .map(|(c, _)| format!("{c:?}"))
                .collect();
            format!(
                "the {t1} largest companies ({}) have {prefix} of the {n} learners{where_}; with \
                 at most {pct:.0}% of a cohort from each company, {} cohorts of {smin}..{smax} \
                 hold at most {room} of them",
                names.join(", "),
                sizes.len()
            )
        };
        return Err(CohortError::Infeasible {
            constraint: Constraint::CompanyShare,
            reason,
        });
    }
    Ok(())
}
