//! k nearest neighbours with a small k-d tree.
//!
//! Fine balancing needs swaps between learners that are almost alike: a
//! swap shifts both cohorts' sums by the difference of the two learners,
//! and once deviations are small only tiny shifts still help. Those
//! partners are a learner's nearest neighbours in mastery space, wherever
//! they sit, so the polishing phase of the search only looks there:
//! O(n k) candidates per sweep instead of O(n^2).

use rayon::prelude::*;

struct Node {
    /// Range of `idx` covered.
    lo: usize,
    hi: usize,
    /// Split dimension and value; `usize::MAX` for leaves.
    dim: usize,
    val: f64,
    left: usize,
    right: usize,
}

const LEAF: usize = 12;

/// Neighbour lists: `k` nearest (excluding the point itself) of each of the
/// `n = points.len() / dim` points, flattened; lists are padded with the
/// point itself when there are fewer than `k` others.
pub fn knn(points: &[f64], dim: usize, k: usize) -> Vec<u32> {
    let n = points.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut nodes = Vec::new();
    build(points, dim, &mut idx, 0, n, &mut nodes);
    let mut out = vec![0u32; n * k];
    out.par_chunks_mut(k).enumerate().for_each(|(q, slot)| {
        let p = &points[q * dim..(q + 1) * dim];
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        search(points, dim, &idx, &nodes, 0, p, q as u32, k, &mut best);
        for (s, b) in slot.iter_mut().enumerate() {
            *b = best.get(s).map_or(q as u32, |x| x.1);
        }
    });
    out
}

fn build(
    points: &[f64],
    dim: usize,
    idx: &mut [u32],
    lo: usize,
    hi: usize,
    nodes: &mut Vec<Node>,
) -> usize {
    let me = nodes.len();
    nodes.push(Node {
        lo,
        hi,
        dim: usize::MAX,
        val: 0.0,
        left: 0,
        right: 0,
    });
    if hi - lo <= LEAF {
        return me;
    }
    let coord = |i: u32, d: usize| points[i as usize * dim + d];
    let (mut best_d, mut best_spread) = (0, -1.0);
    for d in 0..dim {
        let (mn, mx) = idx[lo..hi]
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &i| {
                (a.min(coord(i, d)), b.max(coord(i, d)))
            });
        if mx - mn > best_spread {
            best_spread = mx - mn;
            best_d = d;
        }
    }
    let mid = (hi - lo) / 2;
    idx[lo..hi].select_nth_unstable_by(mid, |&a, &b| {
        coord(a, best_d)
            .total_cmp(&coord(b, best_d))
            .then(a.cmp(&b))
    });
    let val = coord(idx[lo + mid], best_d);
    let left = build(points, dim, idx, lo, lo + mid, nodes);
    let right = build(points, dim, idx, lo + mid, hi, nodes);
    let node = &mut nodes[me];
    node.dim = best_d;
    node.val = val;
    node.left = left;
    node.right = right;
    me
}

#[allow(clippy::too_many_arguments)]
fn search(
    points: &[f64],
    dim: usize,
    idx: &[u32],
    nodes: &[Node],
    at: usize,
    p: &[f64],
    me: u32,
    k: usize,
    best: &mut Vec<(f64, u32)>,
) {
    let node = &nodes[at];
    if node.dim == usize::MAX {
        for &i in &idx[node.lo..node.hi] {
            if i == me {
                continue;
            }
            let q = &points[i as usize * dim..(i as usize + 1) * dim];
            let d2: f64 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
            if best.len() < k || (d2, i) < best[best.len() - 1] {
                let pos = best.partition_point(|x| *x < (d2, i));
                best.insert(pos, (d2, i));
                best.truncate(k);
            }
        }
        return;
    }
    let diff = p[node.dim] - node.val;
    let (near, far) = if diff < 0.0 {
        (node.left, node.right)
    } else {
        (node.right, node.left)
    };
    search(points, dim, idx, nodes, near, p, me, k, best);
    if best.len() < k || diff * diff <= best[best.len() - 1].0 {
        search(points, dim, idx, nodes, far, p, me, k, best);
    }
}
