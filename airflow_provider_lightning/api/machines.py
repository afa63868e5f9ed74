"""Lightning machine names: SDK-style names (``A100``) and slugs (``lit-a100-1``) to the wire slug."""

from __future__ import annotations

# SDK ``Machine`` constant name -> slug sent as ``spec.instanceName`` (reference section 11).
MACHINES: dict[str, str] = {
    "CPU_SMALL": "cpu-2",
    "CPU": "cpu-4",
    "CPU_X_2": "cpu-2",
    "CPU_X_4": "cpu-4",
    "CPU_X_8": "cpu-8",
    "CPU_X_16": "cpu-16",
    "DATA_PREP": "data-prep-mid",
    "DATA_PREP_MAX": "data-prep-max-large",
    "DATA_PREP_ULTRA": "data-prep-ultra-extra-large",
    "T4_SMALL": "lit-t4-1-small",
    "T4": "lit-t4-1",
    "T4_X_2": "lit-t4-2",
    "T4_X_4": "lit-t4-4",
    "T4_X_8": "lit-t4-8",
    "L4": "lit-l4-1",
    "L4_X_2": "lit-l4-2",
    "L4_X_4": "lit-l4-4",
    "L4_X_8": "lit-l4-8",
    "L40S": "lit-l40s-1",
    "L40S_X_2": "lit-l40s-2",
    "L40S_X_4": "lit-l40s-4",
    "L40S_X_8": "lit-l40s-8",
    "RTXP_6000": "lit-rtx-6000-pro-1",
    "RTXP_6000_X_2": "lit-rtx-6000-pro-2",
    "RTXP_6000_X_4": "lit-rtx-6000-pro-4",
    "RTXP_6000_X_8": "lit-rtx-6000-pro-8",
    "A100": "lit-a100-1",
    "A100_X_2": "lit-a100-2",
    "A100_X_4": "lit-a100-4",
    "A100_X_8": "lit-a100-8",
    "A100_40GB": "lit-a100-40gb-1",
    "A100_40GB_X_2": "lit-a100-40gb-2",
    "A100_40GB_X_4": "lit-a100-40gb-4",
    "A100_40GB_X_8": "lit-a100-40gb-8",
    "A100_80GB": "lit-a100-80gb-1",
    "A100_80GB_X_2": "lit-a100-80gb-2",
    "A100_80GB_X_4": "lit-a100-80gb-4",
    "A100_80GB_X_8": "lit-a100-80gb-8",
    "H100": "lit-h100-1",
    "H100_X_2": "lit-h100-2",
    "H100_X_4": "lit-h100-4",
    "H100_X_8": "lit-h100-8",
    "H200": "lit-h200-1",
    "H200_X_2": "lit-h200-2",
    "H200_X_4": "lit-h200-4",
    "H200_X_8": "lit-h200-8",
    "B200": "lit-b200-1",
    "B200_X_8": "lit-b200-8",
}

# Backend slugs that name the same machines.
SLUG_ALIASES: dict[str, str] = {
    **{f"lit-h200-141gb-{n}": f"lit-h200-{n}" for n in (1, 2, 4, 8)},
    **{f"lit-h200x-{n}": f"lit-h200-{n}" for n in (1, 2, 4, 8)},
    "lit-b200-180gb-8": "lit-b200-8",
    "lit-b200x-8": "lit-b200-8",
    "lit-b200x-1": "lit-b200-1",
}

_SLUGS = frozenset(MACHINES.values())


def _key(name: str) -> str:
    return name.strip().upper().replace("-", "_").replace(" ", "_")


def resolve_machine(machine: str, *, allow_custom: bool = False) -> str:
    """Return the wire slug for ``machine`` (a name such as ``A100``/``a100_x_2`` or a slug).

    :param machine: SDK-style machine name or slug, case-insensitive.
    :param allow_custom: pass unknown strings through unchanged (raw cloud instance types such as
        ``p4d.24xlarge``), as the SDK does; off by default so a typo fails before submission.
    :raises ValueError: unknown machine (without ``allow_custom``), listing close matches.
    """
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError("machine must be a non-empty string such as 'CPU', 'A100' or 'lit-a100-1'")
    raw = machine.strip()
    if raw.lower() in _SLUGS:
        return raw.lower()
    if raw.lower() in SLUG_ALIASES:
        return SLUG_ALIASES[raw.lower()]
    if _key(raw) in MACHINES:
        return MACHINES[_key(raw)]
    if allow_custom:
        return raw
    import difflib  # only on the error path

    candidates = [*MACHINES, *sorted(_SLUGS)]
    close = difflib.get_close_matches(_key(raw), list(MACHINES), n=4, cutoff=0.5)
    close += difflib.get_close_matches(raw.lower(), sorted(_SLUGS), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(dict.fromkeys(close))}?" if close else ""
    raise ValueError(
        f"unknown machine {machine!r}.{hint} Known names: {', '.join(list(MACHINES)[:12])}, ... "
        f"({len(candidates)} names and slugs). For a raw cloud instance type pass "
        "allow_custom_machine=True."
    )
