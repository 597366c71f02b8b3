//! Which live host owns which guild group: spread evenly (counts within one of each other)
//! and moving few groups when hosts join or leave, computed from the member list alone so
//! every host arrives at the same map without talking to the others.

use std::collections::{BTreeMap, HashMap};

/// The group of a guild (`guild_id mod groups`).
pub fn group_of(guild: u64, groups: u32) -> u32 {
    (guild % u64::from(groups.max(1))) as u32
}

/// A stable 64-bit mix (SplitMix64's finaliser): the same on every host and every build.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a member's name.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Assigns groups `0..groups` to `members`, deterministically.
///
/// Rendezvous hashing with capacities: every (group, member) pair has a pseudo-random
/// weight; pairs are taken heaviest first, each group going to the first member under its
/// share. Shares are `groups / n`, plus one for the `groups % n` members whose names hash
/// lowest. A group's heaviest members do not depend on who else is live, so when a host
/// joins it takes mostly groups it outweighs everyone on, and when one leaves mostly its
/// groups move.
pub fn assign_groups(groups: u32, members: &[String]) -> BTreeMap<u32, String> {
    let mut members: Vec<&String> = members.iter().collect();
    members.sort();
    members.dedup();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let (base, extra) = (groups as usize / members.len(), groups as usize % members.len());
    let mut by_name_hash = members.clone();
    by_name_hash.sort_by_key(|m| (mix(name_hash(m)), (*m).clone()));
    let mut room: HashMap<&String, usize> =
        by_name_hash.iter().enumerate().map(|(i, m)| (*m, base + usize::from(i < extra))).collect();

    let hashes: Vec<u64> = members.iter().map(|m| name_hash(m)).collect();
    let mut pairs: Vec<(u64, u32, usize)> = Vec::with_capacity(groups as usize * members.len());
    for group in 0..groups {
        for (i, h) in hashes.iter().enumerate() {
            pairs.push((mix(h ^ mix(u64::from(group))), group, i));
        }
    }
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    let mut assigned = BTreeMap::new();
    for (_, group, i) in pairs {
        let member = members[i];
        if assigned.contains_key(&group) {
            continue;
        }
        let left = room.get_mut(member).expect("every member has a share");
        if *left > 0 {
            *left -= 1;
            assigned.insert(group, member.clone());
        }
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
        let one = assign_groups(4096, &hosts(&["a"]));
        assert_eq!(one.len(), 4096);

        let three = assign_groups(4096, &hosts(&["a", "b", "c"]));
        assert_eq!(three.len(), 4096);
        let (lo, hi) = spread(&three);
        assert!(hi - lo <= 1, "{lo}..{hi}");
        // The least possible is the newcomers' shares: 2730 groups.
        let m = moved(&one, &three);
        assert!(m <= 2730 * 11 / 10, "1 → 3 moved {m}");

        let two = assign_groups(4096, &hosts(&["a", "c"]));
        assert_eq!(spread(&two), (2048, 2048));
        assert!(two.values().all(|o| o != "b"));
        // The least possible is the leaver's share, 1365 groups.
        let m = moved(&three, &two);
        assert!(m <= 1365 * 13 / 10, "3 → 2 moved {m}");

        assert_eq!(assign_groups(4096, &hosts(&["c", "a"])), two, "the same members give the same map");
    }

    #[test]
    fn odd_counts_and_no_members() {
        let a = assign_groups(10, &hosts(&["x", "y", "z"]));
        assert_eq!(spread(&a), (3, 4));
        assert_eq!(a.len(), 10);
        assert!(assign_groups(10, &[]).is_empty());
        let small = assign_groups(2, &hosts(&["x", "y", "z"]));
        assert_eq!(small.len(), 2, "more hosts than groups: some hosts idle");
        assert_eq!(group_of(4097, 4096), 1);
    }
}
