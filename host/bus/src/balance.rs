//! Which live host owns which guild group: spread evenly (counts within one of each other)
//! while moving as few groups as possible when hosts join or leave.

use std::collections::{BTreeMap, HashMap};

/// The group of a guild (`guild_id mod groups`).
pub fn group_of(guild: u64, groups: u32) -> u32 {
    (guild % u64::from(groups.max(1))) as u32
}

/// Assigns groups `0..groups` to `members`, starting from the `current` assignment: a
/// group stays with its owner while that owner is live and under its share; the others go
/// to the members furthest under theirs. Deterministic: every host computes the same map.
pub fn assign_groups(groups: u32, members: &[String], current: &BTreeMap<u32, String>) -> BTreeMap<u32, String> {
    let mut members: Vec<&String> = members.iter().collect();
    members.sort();
    members.dedup();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let held = |m: &String| current.values().filter(|o| *o == m).count();
    // The members holding most keep the larger shares, so fewer groups move.
    let mut by_holding = members.clone();
    by_holding.sort_by(|a, b| held(b).cmp(&held(a)).then(a.cmp(b)));
    let (base, extra) = (groups as usize / members.len(), groups as usize % members.len());
    let share: HashMap<&String, usize> =
        by_holding.iter().enumerate().map(|(i, m)| (*m, base + usize::from(i < extra))).collect();

    let mut count: HashMap<&String, usize> = members.iter().map(|m| (*m, 0)).collect();
    let mut assigned = BTreeMap::new();
    let mut orphans = Vec::new();
    for group in 0..groups {
        match current.get(&group).and_then(|o| members.iter().find(|m| **m == o)) {
            Some(owner) if count[owner] < share[owner] => {
                *count.get_mut(owner).expect("a member") += 1;
                assigned.insert(group, (*owner).clone());
            }
            _ => orphans.push(group),
        }
    }
    for group in orphans {
        let owner = *members
            .iter()
            .max_by(|a, b| {
                let gap = |m: &&String| share[*m] as i64 - count[*m] as i64;
                gap(a).cmp(&gap(b)).then(b.cmp(a))
            })
            .expect("members is not empty");
        *count.get_mut(owner).expect("a member") += 1;
        assigned.insert(group, owner.clone());
    }
    assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn spread(a: &BTreeMap<u32, String>) -> (usize, usize) {
        let mut counts: HashMap<&String, usize> = HashMap::new();
        for o in a.values() {
            *counts.entry(o).or_default() += 1;
        }
        (*counts.values().min().unwrap(), *counts.values().max().unwrap())
    }

    fn moved(a: &BTreeMap<u32, String>, b: &BTreeMap<u32, String>) -> usize {
        a.iter().filter(|(g, o)| b.get(g) != Some(o)).count()
    }

    #[test]
    fn groups_spread_within_one_and_move_little_as_hosts_come_and_go() {
        let one = assign_groups(4096, &hosts(&["a"]), &BTreeMap::new());
        assert_eq!(one.len(), 4096);

        let three = assign_groups(4096, &hosts(&["a", "b", "c"]), &one);
        assert_eq!(three.len(), 4096);
        let (lo, hi) = spread(&three);
        assert!(hi - lo <= 1, "{lo}..{hi}");
        assert_eq!(moved(&one, &three), 4096 - 1366, "only the newcomers' shares move");

        let two = assign_groups(4096, &hosts(&["a", "c"]), &three);
        assert_eq!(spread(&two), (2048, 2048));
        assert_eq!(moved(&three, &two), 1365, "only the leaver's groups move");
        assert!(two.values().all(|o| o != "b"));

        assert_eq!(assign_groups(4096, &hosts(&["c", "a"]), &two), two, "stable when nothing changes");
    }

    #[test]
    fn odd_counts_and_no_members() {
        let a = assign_groups(10, &hosts(&["x", "y", "z"]), &BTreeMap::new());
        let (lo, hi) = spread(&a);
        assert_eq!((lo, hi), (3, 4));
        assert!(assign_groups(10, &[], &a).is_empty());
        assert_eq!(group_of(4097, 4096), 1);
    }
}
