#!/bin/sh
# A downstream system's fence for leader-change hooks (docs/leader-hooks.md): it keeps, per
# shard, the highest term it has accepted, and refuses any action carrying a lower one.
#
#   fence.sh STATE_DIR            # with LONGBOAT_SHARD, LONGBOAT_TERM, LONGBOAT_ROLE set
#
# Use it as the hook itself (`longboat nodehost --on-leader-change "fence.sh /shared/state"`)
# or call it from yours before acting. STATE_DIR must be shared by every host whose hooks act
# on the same resource (here: a directory; in production the resource itself keeps the term).
# Exit 0: accepted (the term is the highest seen); exit 3: a stale term, refused.
set -eu
dir=${1:?usage: fence.sh STATE_DIR}
shard=${LONGBOAT_SHARD:?LONGBOAT_SHARD is not set}
term=${LONGBOAT_TERM:?LONGBOAT_TERM is not set}
role=${LONGBOAT_ROLE:?LONGBOAT_ROLE is not set}
mkdir -p "$dir"
exec 9>>"$dir/shard-$shard.lock"
flock 9 # one decision at a time per shard, whichever host asks
highest=$(cat "$dir/shard-$shard.term" 2>/dev/null || echo 0)
if [ "$term" -lt "$highest" ]; then
  echo "refused: term $term of shard $shard is stale (highest seen $highest)" >&2
  echo "$(date +%s%N) shard=$shard term=$term role=$role host=${LONGBOAT_RAFT_ADDRESS:-?} refused" >>"$dir/actions.log"
  exit 3
fi
echo "$term" >"$dir/shard-$shard.term.tmp"
mv "$dir/shard-$shard.term.tmp" "$dir/shard-$shard.term"
# The action itself goes here; it runs only with the highest term seen, under the lock.
echo "$(date +%s%N) shard=$shard term=$term role=$role host=${LONGBOAT_RAFT_ADDRESS:-?} accepted" >>"$dir/actions.log"
echo "accepted: shard $shard term $term role $role"
