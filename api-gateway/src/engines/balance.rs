//! Which engine takes the next request: the one with the fewest outstanding engine calls
//! among those that are not down (TGI's router and tower's `balance` both favour least
//! load); ties rotate, so an idle pool is used round-robin.

/// One engine as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Engine calls in flight.
    pub outstanding: usize,
    /// Not marked down.
    pub available: bool,
    /// Already tried for this request.
    pub tried: bool,
}

/// The index to send to, or `None` when every engine has been tried. Available engines come
/// first; when none is left, an untried down engine is chosen anyway (it may be back before
/// its next probe), so a request fails only after every engine refused it.
pub fn pick(loads: &[Load], rotation: usize) -> Option<usize> {
    let n = loads.len();
    let best = |want_available: bool| {
        (0..n)
            .map(|k| (rotation + k) % n.max(1))
            .filter(|&i| !loads[i].tried && loads[i].available == want_available)
            .min_by_key(|&i| loads[i].outstanding)
    };
    best(true).or_else(|| best(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(outstanding: usize, available: bool) -> Load {
        Load {
            outstanding,
            available,
            tried: false,
        }
    }

    #[test]
    fn least_outstanding_wins() {
        let loads = [load(3, true), load(1, true), load(2, true)];
        assert_eq!(pick(&loads, 0), Some(1));
        assert_eq!(pick(&loads, 2), Some(1));
    }

    #[test]
    fn ties_rotate() {
        let loads = [load(0, true), load(0, true), load(0, true)];
        let picks: Vec<_> = (0..4).map(|r| pick(&loads, r).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
    }

    #[test]
    fn down_engines_only_when_nothing_else_is_left() {
        let loads = [load(0, false), load(9, true)];
        assert_eq!(pick(&loads, 0), Some(1));
        let mut tried = loads;
        tried[1].tried = true;
        assert_eq!(
            pick(&tried, 0),
            Some(0),
            "the down engine is the last resort"
        );
        tried[0].tried = true;
        assert_eq!(pick(&tried, 0), None);
        assert_eq!(pick(&[], 0), None);
    }
}
