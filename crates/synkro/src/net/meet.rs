//! Members meet through relays: a device that is reachable through its
//! relays (see [`NetConfig::reachable_via_relays`]) also dials the other
//! members of its documents through them, at
//! `/…/p2p/RELAY/p2p-circuit/p2p/MEMBER`, so that collaborators (two
//! browsers, say) sync over a direct session rather than only through the
//! relay's stored copy. A circuit carries bytes the relay cannot read.
//!
//! Who to try, and when: every member once a relay's session opens, a
//! member as soon as a presence message of theirs arrives (they are
//! online), the members of a document whose access changed (someone just
//! joined), and everyone still unmet once a minute. A member not online fails fast (the relay has no
//! reservation for them) and is not tried again for [`RETRY`].
//!
//! [`NetConfig::reachable_via_relays`]: synkro_net::NetConfig::reachable_via_relays

use std::collections::HashMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use synkro_core::Event;
use synkro_net::{Multiaddr, Protocol};
use tracing::debug;

use super::{Network, PeerEvent};
use crate::rt::{Instant, Spawner, sleep};
use crate::{MemberId, Repo};

/// How often members still unmet are tried again.
const ROUND: Duration = Duration::from_secs(60);
/// The least time between two attempts to reach the same member.
const RETRY: Duration = Duration::from_secs(10);

/// Run until the network's events end (it shut down).
pub(super) async fn meet_members(repo: Repo, network: Network, relays: Vec<(MemberId, Multiaddr)>, spawner: Spawner) {
    if relays.is_empty() {
        return;
    }
    let mut net_events = network.events();
    let mut repo_events = repo.events();
    // When each member was last tried.
    let mut tried: HashMap<MemberId, Instant> = HashMap::new();
    let me = repo.member_id();
    let try_member = |member: MemberId, tried: &mut HashMap<MemberId, Instant>| {
        if member == me || relays.iter().any(|(r, _)| *r == member) || repo.peers().contains(&member) {
            return;
        }
        let peers = repo.peers();
        let Some((_, relay)) = relays.iter().find(|(r, _)| peers.contains(r)) else {
            return; // no relay up: the next session with one starts a round
        };
        if tried.get(&member).is_some_and(|t| t.elapsed() < RETRY) {
            return;
        }
        tried.insert(member, Instant::now());
        let Some(target) = synkro_net::peer_id_of(&member) else {
            return;
        };
        let addr = relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(target));
        let network = network.clone();
        spawner.spawn(async move {
            match network.dial(addr).await {
                Ok(_) => debug!(%member, "met through a relay circuit"),
                Err(e) => debug!(%member, error = %e, "member not reachable through the relay"),
            }
        });
    };
    let members_of = |repo: &Repo, docs: &[synkro_core::DocId]| -> Vec<MemberId> {
        let mut all: Vec<MemberId> = docs
            .iter()
            .filter_map(|doc| repo.info(doc).ok())
            .flat_map(|info| info.members.into_iter())
            .filter(|(_, role)| role.can_read())
            .map(|(m, _)| m)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let mut round = Box::pin(sleep(ROUND).fuse());
    loop {
        futures::select! {
            e = net_events.next().fuse() => match e {
                Some(PeerEvent::SessionOpened { peer, .. }) if relays.iter().any(|(r, _)| *r == peer) => {
                    tried.clear();
                    for m in members_of(&repo, &repo.list()) {
                        try_member(m, &mut tried);
                    }
                }
                Some(_) => {}
                None => return,
            },
            e = repo_events.next().fuse() => match e {
                Some(Event::Ephemeral { from, .. }) => try_member(from, &mut tried),
                Some(Event::AccessChanged { doc }) => {
                    for m in members_of(&repo, &[doc]) {
                        try_member(m, &mut tried);
                    }
                }
                Some(_) => {}
                None => return,
            },
            () = round => {
                for m in members_of(&repo, &repo.list()) {
                    try_member(m, &mut tried);
                }
                round = Box::pin(sleep(ROUND).fuse());
            }
        }
    }
}
