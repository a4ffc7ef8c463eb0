"""Where containers go: pure functions over container counts, unit-tested without engines."""
from __future__ import annotations


def least_loaded(load: dict[int, int], exclude: set[int] = frozenset()) -> int | None:
    """The server with the fewest containers (ties: lowest id), or None if there is none."""
    candidates = [(count, server_id) for server_id, count in load.items()
                  if server_id not in exclude]
    return min(candidates)[1] if candidates else None


def balance_moves(assignments: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    """Moves ``(container_id, from_server, to_server)`` that even out container counts.

    ``assignments`` maps each healthy server to its containers, most movable first. Each
    move takes one container from the fullest server to the emptiest until no two servers
    differ by more than one: the fewest moves that reach an even spread.
    """
    queues = {server: list(containers) for server, containers in assignments.items()}
    counts = {server: len(containers) for server, containers in queues.items()}
    moves = []
    while len(counts) > 1:
        fullest = max(counts, key=lambda s: (counts[s], -s))
        emptiest = min(counts, key=lambda s: (counts[s], s))
        if counts[fullest] - counts[emptiest] <= 1:
            break
        moves.append((queues[fullest].pop(0), fullest, emptiest))
        counts[fullest] -= 1
        counts[emptiest] += 1
    return moves


def free_ports(used: set[int], wanted: int, low: int, high: int) -> list[int]:
    """The ``wanted`` lowest ports in ``low..high`` that are not in ``used``; fewer if the
    range runs out."""
    found = []
    for port in range(low, high + 1):
        if len(found) == wanted:
            break
        if port not in used:
            found.append(port)
    return found


# --- capacity: a container's limits against a host's CPUs and memory ---------------------------

def needs_of(limits: dict | None, default_cpus: float, default_memory_mib: int
             ) -> tuple[float, int]:
    """(CPUs, memory in MiB) a container asks of its host: its plan's limits
    (``Container.limits``), else the operator's defaults (BERTH_CONTAINER_CPUS, _MEMORY_MIB)."""
    if limits:
        return float(limits["cpus"]), int(limits["memory_mib"])
    return float(default_cpus), int(default_memory_mib)


def misfits(needs: tuple[float, int], cpus: int | None, memory_mib: int | None,
            server: str) -> list[dict]:
    """Why a container needing ``needs`` cannot run on a host of ``cpus`` CPUs and
    ``memory_mib`` MiB, one ``{"field", "message"}`` per limit it exceeds (``cpus``,
    ``memory_mib``); none if it fits. A capacity not known yet (None) fits: the host's engine
    has not told it since it was added or Berth was upgraded, and the next probe will.
    Each container is held to one host's size; their sum may exceed it (overcommit)."""
    want_cpus, want_memory = needs
    found = []
    if cpus is not None and want_cpus > cpus:
        found.append({"field": "cpus", "message": f"{want_cpus:g} CPUs is more than server "
                                                  f"{server} has ({cpus} CPUs)"})
    if memory_mib is not None and want_memory > memory_mib:
        found.append({"field": "memory_mib", "message": f"{want_memory} MiB is more than "
                                                        f"server {server} has ({memory_mib} "
                                                        f"MiB)"})
    return found

