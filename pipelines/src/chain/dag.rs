//! The order of a chain's stages: a topological order of the DAG their `after` lists make, or
//! the stages caught in a cycle.

use std::collections::BTreeSet;

/// Kahn's algorithm, preferring file order among ready stages: given each stage's deps (indices),
/// stage indices in an order where each comes after its deps, or the stages left in a cycle.
pub fn order(deps: &[&[usize]]) -> Result<Vec<usize>, Vec<usize>> {
    let mut waiting: Vec<usize> = deps.iter().map(|deps| deps.len()).collect();
    let mut ready: BTreeSet<usize> = (0..deps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(done) = ready.pop_first() {
        order.push(done);
        for (i, stage_deps) in deps.iter().enumerate() {
            if stage_deps.contains(&done) {
                waiting[i] -= 1;
                if waiting[i] == 0 {
                    ready.insert(i);
                }
            }
        }
    }
    if order.len() == deps.len() {
        Ok(order)
    } else {
        Err((0..deps.len()).filter(|i| !order.contains(i)).collect())
    }
}
