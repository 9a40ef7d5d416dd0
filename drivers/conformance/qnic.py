"""QNIC interface conformance: checks that take only an opened :class:`~drivers.qnic.QNIC` and use
nothing but what the interface promises, so the same checks run unchanged against the lab binding
(over its emulators) and the simulated QNIC.

The promises checked: identity and roles; a duration for every operation; init leaves |0>;
every gate of the fixed set acts as its textbook unitary on basis and superposition states, seen
through measurements whose outcomes the interface fixes (0 = +1 eigenvalue); a two-qubit pair
made with H and CNOT gives agreeing Z and X outcomes and opposite Y outcomes; emit works on
communication qubits only (absorb too, where the QNIC can absorb at all); move carries a state
into a storage qubit and leaves the source initialised; role violations raise
:class:`~qnode_fw.errors.QubitRoleError`, other bad requests
:class:`~qnode_fw.errors.InstrumentError`.

Requirements on the QNIC under test: noiseless operations (outcomes below are certain), at least
two qubits, qubit 0 a communication qubit. Every check re-initialises the qubits it uses.
"""

from __future__ import annotations


from drivers.qnic import QNIC, Basis, Gate, QubitRole
from qnode_fw.errors import InstrumentError, QubitRoleError

from .expect import raises

#: (gates applied to |0>, basis, certain outcome): each line is a textbook identity.
SINGLE_QUBIT_CASES = [
    ((), Basis.Z, 0),
    ((Gate.I,), Basis.Z, 0),
    ((Gate.X,), Basis.Z, 1),
    ((Gate.X, Gate.X), Basis.Z, 0),
    ((Gate.Y,), Basis.Z, 1),
    ((Gate.Z,), Basis.Z, 0),
    ((Gate.X, Gate.Z), Basis.Z, 1),
    ((Gate.H,), Basis.X, 0),             # H|0> = |+>
    ((Gate.X, Gate.H), Basis.X, 1),      # H|1> = |->
    ((Gate.H, Gate.Z), Basis.X, 1),      # Z|+> = |->
    ((Gate.H, Gate.H), Basis.Z, 0),
    ((Gate.H, Gate.S), Basis.Y, 0),      # S|+> = |+i>
    ((Gate.H, Gate.SDG), Basis.Y, 1),    # S^dagger|+> = |-i>
    ((Gate.H, Gate.S, Gate.S), Basis.X, 1),  # S^2 = Z
    ((Gate.H, Gate.S, Gate.SDG), Basis.X, 0),
]


def _pair(qnic: QNIC) -> tuple[int, int]:
    """Qubit 0 (communication) and the first storage qubit, or qubit 1 if all can emit."""
    storage = [i for i in range(qnic.num_qubits) if qnic.role(i) is QubitRole.STORAGE]
    return 0, (storage[0] if storage else 1)


def check_identity_and_roles(qnic: QNIC) -> None:
    ident = qnic.identify()
    assert isinstance(ident, str) and ident.strip()
    assert qnic.kind == "qnic" and isinstance(qnic.model, str) and qnic.model
    assert isinstance(qnic.qnic_address, int) and qnic.qnic_address >= 0
    assert qnic.num_qubits >= 2
    roles = [qnic.role(i) for i in range(qnic.num_qubits)]
    assert all(isinstance(r, QubitRole) for r in roles)
    assert roles[0] is QubitRole.COMMUNICATION
    with raises(InstrumentError):
        qnic.role(qnic.num_qubits)


def check_durations(qnic: QNIC) -> None:
    names = ["init", "measure", "emit", *[g.value for g in Gate]]
    if any(qnic.role(i) is QubitRole.STORAGE for i in range(qnic.num_qubits)):
        names.append("move")
    for name in names:
        d = qnic.duration_ps(name)
        assert isinstance(d, int) and d >= 0, name
    for name in ("init", "measure", "emit"):
        assert qnic.duration_ps(name) > 0, name
    for gate in Gate:
        assert qnic.duration_ps(gate) == qnic.duration_ps(gate.value)
    with raises(InstrumentError):
        qnic.duration_ps("teleport")


def check_single_qubit_gates(qnic: QNIC) -> None:
    for q in _pair(qnic):
        for gates, basis, expected in SINGLE_QUBIT_CASES:
            qnic.init(q)
            for g in gates:
                qnic.gate(g, q)
            got = qnic.measure(q, basis)
            assert got == expected, f"qubit {q}: {[g.value for g in gates]} then measure {basis.value}"


def check_measure_repeats_in_z(qnic: QNIC) -> None:
    a, _ = _pair(qnic)
    qnic.init(a)
    qnic.gate(Gate.X, a)
    assert [qnic.measure(a, Basis.Z) for _ in range(3)] == [1, 1, 1]


def check_two_qubit_gates(qnic: QNIC) -> None:
    a, b = _pair(qnic)
    for control_flipped in (0, 1):
        for control, target in ((a, b), (b, a)):
            qnic.init(a)
            qnic.init(b)
            if control_flipped:
                qnic.gate(Gate.X, control)
            qnic.gate(Gate.CNOT, control, target)
            assert qnic.measure(target, Basis.Z) == control_flipped, f"CNOT({control},{target})"
            assert qnic.measure(control, Basis.Z) == control_flipped
        # CZ flips the phase of |11>: seen on the target in the X basis
        qnic.init(a)
        qnic.init(b)
        if control_flipped:
            qnic.gate(Gate.X, a)
        qnic.gate(Gate.H, b)
        qnic.gate(Gate.CZ, a, b)
        assert qnic.measure(b, Basis.X) == control_flipped, "CZ"


def check_bell_pair_correlations(qnic: QNIC, repeats: int = 4) -> None:
    """Phi+ = (|00> + |11>)/sqrt2: ZZ = XX = +1 and YY = -1, whatever the single outcomes."""
    a, b = _pair(qnic)
    for basis, agree in ((Basis.Z, True), (Basis.X, True), (Basis.Y, False)):
        for _ in range(repeats):
            qnic.init(a)
            qnic.init(b)
            qnic.gate(Gate.H, a)
            qnic.gate(Gate.CNOT, a, b)
            ma, mb = qnic.measure(a, basis), qnic.measure(b, basis)
            assert ma in (0, 1) and mb in (0, 1)
            assert (ma == mb) is agree, f"Bell pair measured in {basis.value}: {ma}, {mb}"


def check_emit(qnic: QNIC) -> None:
    for i in range(qnic.num_qubits):
        qnic.init(i)
        if qnic.role(i) is QubitRole.COMMUNICATION:
            qnic.emit(i, attempt_id=17)
            assert qnic.measure(i, Basis.Z) in (0, 1)
        else:
            with raises(QubitRoleError):
                qnic.emit(i, attempt_id=17)


def check_absorb(qnic: QNIC) -> None:
    """A QNIC may have no absorbing transducer (it then refuses every absorb); one that has one
    arms communication qubits only."""
    a, b = _pair(qnic)
    qnic.init(a)
    try:
        qnic.absorb(a, attempt_id=18)
    except InstrumentError as exc:
        assert not isinstance(exc, QubitRoleError) and exc.resource == qnic.resource
    else:
        assert qnic.measure(a, Basis.Z) in (0, 1)
    if qnic.role(b) is QubitRole.STORAGE:
        with raises(InstrumentError):
            qnic.absorb(b, attempt_id=18)


def check_move(qnic: QNIC) -> None:
    a, b = _pair(qnic)
    if qnic.role(b) is not QubitRole.STORAGE:
        return
    for flipped in (0, 1):
        qnic.init(a)
        qnic.init(b)
        if flipped:
            qnic.gate(Gate.X, a)
        qnic.move(a, b)
        assert qnic.measure(b, Basis.Z) == flipped
        assert qnic.measure(a, Basis.Z) == 0  # the source is left initialised
    with raises(QubitRoleError):
        qnic.move(b, a)  # into a communication qubit
    with raises(InstrumentError):
        qnic.move(a, a)


def check_bad_requests(qnic: QNIC) -> None:
    n = qnic.num_qubits
    a, b = _pair(qnic)
    for call in (lambda: qnic.init(n), lambda: qnic.init(-1), lambda: qnic.gate(Gate.X, n),
                 lambda: qnic.measure(n, Basis.Z), lambda: qnic.emit(n, 1),
                 lambda: qnic.gate(Gate.CNOT, a), lambda: qnic.gate(Gate.X, a, b),
                 lambda: qnic.gate(Gate.CNOT, a, a), lambda: qnic.gate(Gate.CZ, a, n)):
        with raises(InstrumentError) as info:
            call()
        assert info.value.resource == qnic.resource


QNIC_CHECKS = [
    check_identity_and_roles, check_durations, check_single_qubit_gates, check_measure_repeats_in_z,
    check_two_qubit_gates, check_bell_pair_correlations, check_emit, check_absorb, check_move,
    check_bad_requests,
]


def check_qnic(qnic: QNIC) -> None:
    for check in QNIC_CHECKS:
        check(qnic)
