"""layer:status (semantics reference §4): maintenance now, the rest queued and sent once at exit."""
from enum import Enum

from charmhelpers.core import hookenv


class WorkloadState(Enum):
    """Ordered by precedence: earlier members win at finalize."""
    MAINTENANCE = 'maintenance'
    BLOCKED = 'blocked'
    WAITING = 'waiting'
    ACTIVE = 'active'


_ORDER = list(WorkloadState)
_QUEUE = []
_STATE = {'initialized': False, 'finalized': False}


def maintenance(message):
    status_set(WorkloadState.MAINTENANCE, message)


maint = maintenance


def blocked(message):
    status_set(WorkloadState.BLOCKED, message)


def waiting(message):
    status_set(WorkloadState.WAITING, message)


def active(message):
    status_set(WorkloadState.ACTIVE, message)


def status_set(workload_state, message):
    if not isinstance(workload_state, WorkloadState):
        workload_state = WorkloadState(workload_state)
    if workload_state is WorkloadState.MAINTENANCE:
        # Maintenance is immediate and never queued.
        hookenv.log('status-set: {}: {}'.format(workload_state.value, message), hookenv.INFO)
        hookenv.status_set(workload_state.value, message)
        return
    _QUEUE.append((workload_state, message))
    if not _STATE['initialized'] or _STATE['finalized']:
        # Outside the reactive run (actions, late atexit): send at once (layer-status #7, #9).
        _finalize()


def _initialize():
    if not _STATE['initialized']:
        _STATE['initialized'] = True
        hookenv.atexit(_finalize)


def _finalize():
    """Send exactly one status: the highest-precedence state, its most recently queued message."""
    _STATE['finalized'] = True
    if not _QUEUE:
        return
    best = min(_ORDER.index(s) for s, _ in _QUEUE)
    state = _ORDER[best]
    message = [m for s, m in _QUEUE if s is state][-1]
    del _QUEUE[:]
    hookenv.log('status-set: {}: {}'.format(state.value, message), hookenv.INFO)
    hookenv.status_set(state.value, message)
