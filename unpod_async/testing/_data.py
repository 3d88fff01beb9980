"""Deterministic generation of fake Unpod tasks, in two shapes.

Every task is a pure function of ``(seed, serial)``: ``serial`` numbers tasks in creation order
(0 is the oldest), so the server order (newest first) is descending serial. The cheap fields that
the simulator filters on (``task_id``, ``status``, ``call_type``, ``created``, ``input.name``, the
outcome label) are drawn first; the full document is rendered to JSON bytes on demand and cached
by the caller.

:func:`real_task_document` is shaped like what the real backend sends (see the project's API
notes): top-level ``user_info`` and ``thread_id``, ``id`` / ``_id`` / neither, timestamps without
a zone, native and provider-shaped outputs side by side, ``post_call_data.summary`` as an object
carrying the outcome label (sometimes the docs' string form), and the type variants the real
payloads carry (``"duration": "45"``, ``"transcript": null``). :func:`task_document` is the
earlier, simpler shape (``Simulator(legacy_shapes=True)``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

import msgspec

__all__ = [
    "BASE_EPOCH",
    "OUTCOME_LABELS",
    "RUN_SIZE",
    "SPACE_ID",
    "USERS",
    "TaskRecord",
    "assignee_of",
    "iso8601",
    "make_record",
    "object_id",
    "phone_of",
    "real_task_document",
    "render_real_task",
    "render_task",
    "run_document",
    "run_id_of",
    "run_of",
    "task_document",
    "thread_id_of",
]

#: ``created`` of serial 0: 2026-01-01T00:00:00Z. Each later task is created one minute later.
BASE_EPOCH: Final = 1_767_225_600
#: The ``space_id`` every task of the simulated space carries.
SPACE_ID: Final = 4242
#: Tasks per run: serials ``k * RUN_SIZE`` .. ``(k + 1) * RUN_SIZE - 1`` of a space are run ``k``.
RUN_SIZE: Final = 250

_STATUSES: Final = (
    ("completed", 70),
    ("failed", 8),
    ("partially_completed", 6),
    ("pending", 7),
    ("in_progress", 5),
    ("hold", 4),
)
_RUN_MODES: Final = (("prod", 80), ("test", 8), ("dev", 5), ("prefect", 4), ("default", 3))


def _table(weights: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """Expand ``(value, weight)`` pairs into a lookup table indexed by a uniform draw."""
    out: list[str] = []
    for value, weight in weights:
        out.extend([value] * weight)
    return tuple(out)


_STATUS_TABLE: Final = _table(_STATUSES)
_RUN_MODE_TABLE: Final = _table(_RUN_MODES)

# (display name, ascii slug used for e-mail addresses)
_FIRST: Final = (
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("François", "francois"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Ngozi", "ngozi"),
    ("Priya", "priya"),
    ("Mei", "mei"),
    ("Ahmed", "ahmed"),
    ("Olivia", "olivia"),
    ("Liam", "liam"),
    ("Emma", "emma"),
    ("Noah", "noah"),
    ("Ava", "ava"),
    ("Lucas", "lucas"),
    ("Sofia", "sofia"),
    ("Mateo", "mateo"),
    ("Isabella", "isabella"),
    ("Hiroshi", "hiroshi"),
    ("Chloé", "chloe"),
    ("Björn", "bjorn"),
    ("Aarav", "aarav"),
    ("Fatima", "fatima"),
    ("Kwame", "kwame"),
    ("Elena", "elena"),
    ("Daniel", "daniel"),
    ("Grace", "grace"),
    ("Omar", "omar"),
    ("Ana", "ana"),
    ("Tomás", "tomas"),
    ("李", "li"),
    ("Renée", "renee"),
)
_LAST: Final = (
    ("García", "garcia"),
    ("Smith", "smith"),
    ("O'Brien", "obrien"),
    ("Müller", "muller"),
    ("Nguyen", "nguyen"),
    ("Patel", "patel"),
    ("Kowalski", "kowalski"),
    ("Johnson", "johnson"),
    ("Rossi", "rossi"),
    ("Yamamoto", "yamamoto"),
    ("Okafor", "okafor"),
    ("Dubois", "dubois"),
    ("Andersson", "andersson"),
    ("Silva", "silva"),
    ("北京", "beijing"),
    ("Brown", "brown"),
    ("Martínez", "martinez"),
    ("Lee", "lee"),
    ("Cohen", "cohen"),
    ("Fernández", "fernandez"),
    ("Walker", "walker"),
    ("Hansen", "hansen"),
    ("Ivanova", "ivanova"),
    ("Kim", "kim"),
)
_DOMAINS: Final = ("example.com", "mail.example", "corp.example.org", "demo.example")
_TIERS: Final = ("gold", "silver", "bronze", "platinum")
_COMPANIES: Final = (
    "Acme, Inc.",
    'The "Best" Widgets Co.',
    "Globex",
    "Initech",
    "Zoë's Café",
    "北京 Trading Ltd",
    "Umbrella\nHoldings",
)
_LANGUAGES: Final = ("en", "es", "fr", "de", "hi", "zh")

_OBJECTIVES: Final = (
    "Confirm the appointment scheduled for next week and collect any changes.",
    "Follow up on the quote sent last Tuesday, answer questions, and book a demo.",
    'Renew the "Premium" subscription before it lapses; offer the loyalty discount.',
    "Collect feedback on the recent support ticket, including a 1-5 satisfaction score.",
    "Verify the delivery address, contact number and preferred delivery window.",
    "Introduce the new product line and qualify interest (budget, timeline, authority).",
    "Remind the customer about the overdue invoice and agree on a payment date.",
    "Welcome the new member, explain the benefits, and schedule the onboarding call.",
)
_INSTRUCTIONS: Final = (
    "Be polite and concise. If the customer asks to stop calling, mark do-not-call.",
    "Speak slowly, confirm spelling of names, and never promise discounts above 10%.",
    'Use the script "Welcome v3". Escalate to a human if the customer is upset.',
    "Greet by first name, verify identity with the last 4 digits, then proceed.\n"
    "Do not share account details before verification.",
    "Keep the call under 5 minutes; offer a callback if the customer is busy.",
    "Mention the referral program only if the customer sounds satisfied 🙂.",
)
_NOTES: Final = (
    "",
    "Prefers calls after 5pm.",
    'Said "call me back later", maybe interested.',
    "VIP customer, handle with care; previous complaint resolved.",
    "Prefers WhatsApp 📱, speaks Spanish and English.",
    "Moved from 北京 to Toronto last year.",
    "Line 1 of note\nLine 2 of note, with a comma",
    "Asked about pricing, warranty, and delivery times.",
    "Café owner — busy in the mornings.",
)

_AGENT_OPENERS: Final = (
    "Hi {name}, this is Ava calling from Demo Org.",
    "Hello {name}! I'm calling on behalf of Demo Org, do you have a minute?",
    "Good afternoon {name}, this is the Demo Org assistant.",
    "Hi {name}, thanks for picking up. I'll be quick, I promise.",
)
_AGENT_LINES: Final = (
    "I'm calling about your recent order, number {n}.",
    "Could you confirm your preferred delivery window, morning or afternoon?",
    'Our "Premium" plan includes priority support, free shipping, and monthly reports.',
    "I understand. Would it help if I sent the details by e-mail instead?",
    "Great, I've noted that down. Is there anything else I can help with today?",
    "Just to confirm, you said {n} units, correct?",
    "The price for that option is ${n}.99 per month, taxes included.",
    "No problem at all, I can schedule a callback for tomorrow at {h} o'clock.",
    "Let me check that for you; it'll take just a second.",
    "Thanks for your patience, {name}. I've updated your record.",
    "We have a special offer this week: 15% off, valid until Friday.",
    "Your appointment is confirmed for {h}:30. You'll get a text reminder.",
    "Sorry, I didn't catch that. Could you repeat it, please?",
    "I hear you, and I'm sorry about the delay with ticket #{n}.",
    "Perfect! You'll receive a confirmation e-mail shortly, ✅.",
    "To summarise:\n- delivery on Monday\n- {n} items\n- payment by card",
)
_USER_LINES: Final = (
    "Yes, speaking.",
    "Sure, I have a couple of minutes.",
    "Hmm, I'm not sure, can you call back later?",
    'Honestly, the last delivery was late, and the box said "fragile" but was crushed.',
    "Morning works better for me, before {h}.",
    "How much does it cost, exactly?",
    "I'm not interested, thanks.",
    "Can you send me an e-mail with the details?",
    "That sounds good, let's do it!",
    "Wait, who is this again?",
    "I already paid that invoice, number {n}, I think.",
    "Sí, claro. Perfecto, gracias.",
    "Ok 👍",
    "My number changed, it's now +1 555 01{n}.",
    "I'm driving right now; call me tomorrow?",
    "Yes, {n} units is right.",
    "我明白了。谢谢。",
    "Could you repeat the price? The line is bad, sorry...",
)
_SUMMARIES: Final = (
    "Customer confirmed the appointment and asked for an SMS reminder.",
    "Customer is interested in the Premium plan; send pricing by e-mail.",
    'Customer complained about a late delivery ("box was crushed"); escalated.',
    "Voicemail reached; no message left.",
    "Customer asked for a callback tomorrow morning.",
    "Customer declined the offer, politely.",
    "Payment date agreed: next Friday.\nFollow-up e-mail scheduled.",
    "Cliente confirmó la cita; prefiere español.",
    "Customer in 北京 office; call again during their business hours.",
)
_OUTCOMES: Final = ("interested", "not_interested", "callback", "voicemail")
_SENTIMENTS: Final = ("positive", "neutral", "negative")
_LABELS: Final = (
    "appointment_confirmed",
    "sales_lead",
    "complaint",
    "payment_promise",
    "no_answer",
    "wrong_number",
)


def _expand(templates: tuple[str, ...], variants: int) -> tuple[str, ...]:
    """Pre-fill ``{n}``/``{h}`` placeholders so no formatting happens per task.

    ``{name}`` is kept and substituted at render time.
    """
    out: list[str] = []
    for t_index, template in enumerate(templates):
        if "{n}" in template or "{h}" in template:
            for v in range(variants):
                n = 2 + (t_index * 37 + v * 13) % 97
                h = 8 + (t_index + v * 5) % 11
                out.append(template.format(name="{name}", n=n, h=h))
        else:
            out.append(template)
    return tuple(out)


_encode = msgspec.json.Encoder().encode


def _turn_prefixes(role: str, lines: tuple[str, ...]) -> tuple[bytes, ...]:
    """Pre-encoded ``{"role":..,"content":..,"timestamp":"`` fragments of transcript turns."""
    return tuple(
        b'{"role":' + _encode(role) + b',"content":' + _encode(line) + b',"timestamp":"'
        for line in lines
    )


_OPENER_LINES: Final = _expand(_AGENT_OPENERS, 1)
_AGENT_LINE_VARIANTS: Final = _expand(_AGENT_LINES, 8)
_USER_LINE_VARIANTS: Final = _expand(_USER_LINES, 8)
_OPENER_TURNS: Final = _turn_prefixes("agent", _OPENER_LINES)
_AGENT_TURNS: Final = _turn_prefixes("agent", _AGENT_LINE_VARIANTS)
_USER_TURNS: Final = _turn_prefixes("user", _USER_LINE_VARIANTS)
_NAME_SLOT: Final = b"{name}"

_DAY_PREFIX: dict[int, str] = {}
_DAY_PREFIX_B: dict[int, bytes] = {}
_TIME_OF_DAY: list[str] = []
_TURN_TAILS: list[bytes] = []
_NAIVE_TURN_TAILS: list[bytes] = []


def _day_prefix(day: int) -> str:
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
        _DAY_PREFIX[day] = prefix
        _DAY_PREFIX_B[day] = prefix.encode()
    return prefix


def _time_of_day() -> list[str]:
    if not _TIME_OF_DAY:
        _TIME_OF_DAY.extend(
            f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
        )
        _TURN_TAILS.extend(f'{t}"}}'.encode() for t in _TIME_OF_DAY)
        _NAIVE_TURN_TAILS.extend(f'{t[:-1]}"}}'.encode() for t in _TIME_OF_DAY)
    return _TIME_OF_DAY


def iso8601(ts: int) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (fast, cached)."""
    day, sod = divmod(ts, 86_400)
    return _day_prefix(day) + _time_of_day()[sod]


def naive_iso(ts: int) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SS``, without a zone, as the backend writes them."""
    day, sod = divmod(ts, 86_400)
    return _day_prefix(day) + _time_of_day()[sod][:-1]


def _spaced(ts: int) -> str:
    """``YYYY-MM-DD HH:MM:SS``, the call executor's form."""
    day, sod = divmod(ts, 86_400)
    return _day_prefix(day)[:-1] + " " + _time_of_day()[sod][:-1]


#: The call-outcome labels a real-shaped task's ``post_call_data.summary.status`` carries
#: (index 0: none). The server's ``status`` filter matches these.
OUTCOME_LABELS: Final = (
    None,
    "Interested",
    "Call Back",
    "Not Interested",
    "Not Connected",
    "Voicemail",
    "Do Not Call",
    "Wrong Number",
)
_COMPLETED_LABELS: Final = _table(
    (
        ("Interested", 30),
        ("Call Back", 22),
        ("Not Interested", 25),
        ("Voicemail", 10),
        ("Do Not Call", 6),
        ("Wrong Number", 7),
    )
)
_LABEL_INDEX: Final = {label: i for i, label in enumerate(OUTCOME_LABELS) if label}

#: The platform users behind the tasks (a real-shaped task's top-level ``user`` and
#: ``user_info``).
USERS: Final = (
    {
        "id": 17,
        "email": "dana.ops@demo.example",
        "full_name": "Dana Ops",
        "user_token": "usr_9f2c1a7e5b",
        "location": "Bengaluru, India",
    },
    {
        "id": 23,
        "email": "li.wei@demo.example",
        "full_name": "李 Wei",
        "user_token": "usr_41b8d0c3aa",
        "location": None,
    },
    {
        "id": 42,
        "email": "sam.oneil@demo.example",
        "full_name": "Sam O'Neil",
        "user_token": "usr_c07e55aa19",
        "location": "Toronto, Canada",
    },
)

_NAMES: dict[tuple[int, int], str] = {}


class TaskRecord:
    """What the simulator keeps per task: filterable fields plus the cached JSON bytes.

    ``bits`` packs the real shape's filterable draws in a small int (no allocation): the
    outcome label's index in :data:`OUTCOME_LABELS` (bits 0-2), a provider-shaped output
    (bit 3), the user's index in :data:`USERS` (bits 4-5).
    """

    __slots__ = ("bits", "call_type", "created", "name", "raw", "serial", "status", "task_id")

    def __init__(
        self,
        serial: int,
        created: int,
        task_id: str,
        status: str,
        call_type: str | None,
        name: str,
        bits: int = 0,
    ) -> None:
        self.serial = serial
        self.created = created
        self.task_id = task_id
        self.status = status
        self.call_type = call_type
        self.name = name
        self.bits = bits
        self.raw: bytes | None = None

    @property
    def outcome(self) -> str | None:
        return OUTCOME_LABELS[self.bits & 7]

    @property
    def user(self) -> dict[str, Any]:
        return USERS[(self.bits >> 4) & 3]


# Every task draws its randomness from BLAKE2b of (seed, serial): random access, no RNG objects
# to seed, and a record needs only the first 64-byte block of the stream.
def _head_stream(seed: int, serial: int) -> bytes:
    return hashlib.blake2b(b"unpod-sim:%d:%d" % (seed, serial), digest_size=64).digest()


def _body_stream(seed: int, serial: int) -> bytes:
    """128 bytes; the first 64 are :func:`_head_stream`."""
    key = b"unpod-sim:%d:%d" % (seed, serial)
    return (
        hashlib.blake2b(key, digest_size=64).digest()
        + hashlib.blake2b(key, digest_size=64, person=b"body").digest()
    )


class _Head:
    """The first draws of a task; shared by :func:`make_record` and :func:`task_document`."""

    __slots__ = ("call_type", "created", "first", "has_output", "last", "name", "status", "task_id")

    #: The record's packed draws (see :class:`TaskRecord`); only the real shape has any.
    bits = 0

    def __init__(self, d: bytes, serial: int) -> None:
        # d[0:16] task_id, d[16] jitter, d[17] status, d[18] first, d[19] last, d[20] output,
        # d[21] call type.
        self.created = BASE_EPOCH + serial * 60 + d[16] % 60
        self.task_id = "T" + d[:16].hex()
        status = _STATUS_TABLE[d[17] % len(_STATUS_TABLE)]
        self.status = status
        first, last = d[18] % len(_FIRST), d[19] % len(_LAST)
        self.first = _FIRST[first]
        self.last = _LAST[last]
        name = _NAMES.get((first, last))
        if name is None:  # one string per name, shared by every record that has it
            name = _NAMES[first, last] = f"{self.first[0]} {self.last[0]}"
        self.name = name
        if status == "pending":
            has_output = d[20] < 77  # ~30% have an output
        elif status == "in_progress":
            has_output = d[20] < 128  # ~50%
        else:
            has_output = True
        self.has_output = has_output
        if has_output:
            self.call_type: str | None = "outbound" if d[21] < 192 else "inbound"
        else:
            self.call_type = None


class _RealHead(_Head):
    """The draws of a real-shaped task that its record keeps (from bytes 52-63; the legacy
    body uses 24-51, so both shapes share their ids, names, statuses and dates)."""

    __slots__ = ("bits", "docs_form", "label", "provider", "user")

    def __init__(self, d: bytes, serial: int) -> None:
        super().__init__(d, serial)
        status = self.status
        self.provider = self.has_output and d[52] < 64  # ~25% of outputs
        label: str | None = None
        self.docs_form = False
        if self.has_output and not self.provider:
            if status == "completed":
                label = _COMPLETED_LABELS[d[53] % len(_COMPLETED_LABELS)]
            elif status == "partially_completed":
                label = "Call Back"
            elif status == "failed":
                label = "Not Connected"
            if label is not None and d[57] < 26:  # ~10%: the docs' form, a string summary
                self.docs_form = True
        self.label = label
        self.user = d[54] % len(USERS)
        if self.provider:
            self.call_type = "outboundPhoneCall" if d[21] < 192 else "inboundPhoneCall"
        filterable = _LABEL_INDEX[label] if label is not None and not self.docs_form else 0
        self.bits = filterable | (self.provider << 3) | (self.user << 4)


def make_record(seed: int, serial: int, *, real: bool = False) -> TaskRecord:
    """Build the cheap per-task record (no JSON rendering); ``real`` for the real shape."""
    head = (_RealHead if real else _Head)(_head_stream(seed, serial), serial)
    return TaskRecord(
        serial, head.created, head.task_id, head.status, head.call_type, head.name, head.bits
    )


def phone_of(seed: int, serial: int) -> str:
    """The contact's phone number (``input.phone``, ``output.contact_number``)."""
    return _phone(_head_stream(seed, serial))


def _phone(d: bytes) -> str:
    return f"+1555{int.from_bytes(d[27:30], 'big') % 10_000_000:07d}"


def thread_id_of(seed: int, serial: int) -> str | None:
    """A real-shaped task's ``thread_id``: shared by runs of three tasks, null for ~20%."""
    return _thread_id(seed, serial, _head_stream(seed, serial))


def _thread_id(seed: int, serial: int, d: bytes) -> str | None:
    if d[55] < 51:
        return None
    return "th_" + hashlib.blake2b(b"thread:%d:%d" % (seed, serial // 3), digest_size=8).hexdigest()


def object_id(seed: int, serial: int, created: int) -> str:
    """ObjectId-like ``_id``: 8 hex of the creation time, then a 16 hex counter.

    ``created`` grows with ``serial``, so ids strictly increase with creation order.
    """
    return f"{created:08x}{((seed & 0xFFFF) << 40) + serial:016x}"


# --- draws both shapes share ------------------------------------------------------------------


def _email(head: _Head, d: bytes) -> str:
    """The contact's e-mail address (``input.email``)."""
    return (
        f"{head.first[1]}.{head.last[1]}{(d[24] << 8 | d[25]) % 1000}"
        f"@{_DOMAINS[d[26] % len(_DOMAINS)]}"
    )


def _extra(d: bytes) -> dict[str, str]:
    """The optional extra input field: a company (~20%), a language (~10%) or nothing."""
    if d[32] < 51:
        return {"company": _COMPANIES[d[33] % len(_COMPANIES)]}
    if d[32] < 77:
        return {"language": _LANGUAGES[d[33] % len(_LANGUAGES)]}
    return {}


def _call_start(d: bytes, created: int) -> int:
    """The second the call started: 30 s to ~10 min after the task was created."""
    return created + 30 + (d[35] << 8 | d[36]) % 600


def _brief(d: bytes) -> dict[str, str]:
    """The task's ``task`` object: its objective and instructions."""
    return {
        "objective": _OBJECTIVES[d[48] % len(_OBJECTIVES)],
        "instructions": _INSTRUCTIONS[d[49] % len(_INSTRUCTIONS)],
    }


def _classification(d: bytes) -> dict[str, Any]:
    """``post_call_data.classification``."""
    return {"label": _LABELS[d[44] % len(_LABELS)], "confidence": 0.5 + (d[45] % 50) / 100}


def _call_id(d: bytes) -> str:
    return "call_" + d[96:104].hex()


def _recording_url(space_id: int, call_id: str) -> str:
    return f"https://recordings.example/{space_id}/{call_id}.mp3"


_TS_KEY: Final = b'"timestamp":"'
_LEGACY_VOICES: Final = (_OPENER_TURNS, _AGENT_TURNS, _USER_TURNS)


def _turns(
    d: bytes,
    start: int,
    first_name: str,
    voices: tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]],
    *,
    spread: int,
    speaker: str | None = None,
) -> tuple[bytes, int]:
    """A transcript, as JSON bytes, and the second the call ended.

    The transcript is the bulk of a task, so it is assembled from pre-encoded fragments:
    ``voices`` holds the (opener, agent, user) turn prefixes, each ending where the turn's
    timestamp begins; there are ``4 + d[37] % spread`` turns. With a ``speaker`` (the real
    shape), each user turn carries it as its ``user_id`` and the timestamps have no zone.
    """
    openers, agents, users = voices
    _time_of_day()
    name_json = _encode(first_name)[1:-1]
    if speaker is None:
        suffix, tails = b"", _TURN_TAILS
    else:
        suffix, tails = _encode(speaker) + b"," + _TS_KEY, _NAIVE_TURN_TAILS
    day, sod = divmod(start, 86_400)
    _day_prefix(day)
    day_b = _DAY_PREFIX_B[day]
    parts = [openers[d[38] % len(openers)].replace(_NAME_SLOT, name_json) + day_b + tails[sod]]
    sod += 2 + d[64] % 20
    for i in range(1, 4 + d[37] % spread):
        if sod >= 86_400:
            day += 1
            sod -= 86_400
            _day_prefix(day)
            day_b = _DAY_PREFIX_B[day]
        pick = d[64 + i]
        turn = users[pick % len(users)] + suffix if i & 1 else agents[pick % len(agents)]
        if _NAME_SLOT in turn:
            turn = turn.replace(_NAME_SLOT, name_json)
        parts.append(turn + day_b + tails[sod])
        sod += 2 + d[80 + i] % 20
    return b"[" + b",".join(parts) + b"]", day * 86_400 + sod


# --- the legacy shape -----------------------------------------------------------------------


#: A legacy task's ``output.call_status`` by its status (the rest: ``"no_answer"``).
_CALL_STATUSES: Final = {
    "completed": "completed",
    "partially_completed": "completed",
    "failed": "failed",
    "in_progress": "in_progress",
}


def _legacy_output(d: bytes, head: _Head, phone: str, email: str) -> tuple[dict[str, Any], int]:
    """A legacy task's ``output`` (the call it made) and the second the call ended."""
    start = _call_start(d, head.created)
    raw, end = _turns(d, start, head.first[0], _LEGACY_VOICES, spread=13)
    duration = float(end - start) + (d[39] % 10) / 10
    call_id = _call_id(d)
    output = {
        "call_id": call_id,
        "call_type": head.call_type,
        "call_status": _CALL_STATUSES.get(head.status, "no_answer"),
        "duration": duration,
        "start_time": iso8601(start),
        "end_time": iso8601(end),
        "recording_url": _recording_url(SPACE_ID, call_id),
        "cost": round(duration * 0.0015, 4),
        "transcript": msgspec.Raw(raw),
        "post_call_data": {
            "summary": _SUMMARIES[d[40] % len(_SUMMARIES)],
            "outcome": _OUTCOMES[d[41] % len(_OUTCOMES)],
            "sentiment": _SENTIMENTS[d[42] % len(_SENTIMENTS)],
            "follow_up_required": d[43] < 90,
            "classification": _classification(d),
        },
        "user_info": {"name": head.name, "contact_number": phone, "email": email},
    }
    return output, end


def task_document(seed: int, serial: int, *, strip_ids: bool = False) -> dict[str, Any]:
    """The full task as a JSON-ready dict."""
    d = _body_stream(seed, serial)
    head = _Head(d, serial)
    created = head.created
    status = head.status
    # Body draws: fixed offsets 24..63, transcript 64..95, ids 96..127.
    email = _email(head, d)
    phone = _phone(d)
    custom = {"tier": _TIERS[d[30] % len(_TIERS)], "visits": d[31] % 12, **_extra(d)}
    user_input = {
        "name": head.name,
        "contact_number": phone,
        "email": email,
        "notes": _NOTES[d[34] % len(_NOTES)],
        "custom": custom,
    }
    output, end = _legacy_output(d, head, phone, email) if head.has_output else ({}, created)
    doc: dict[str, Any] = {}
    if not strip_ids:
        doc["_id"] = object_id(seed, serial, created)
    doc["task_id"] = head.task_id
    doc["run_id"] = "R" + d[104:120].hex()
    doc["space_id"] = SPACE_ID
    doc["user"] = 17
    doc["user_org_id"] = 3
    doc["collection_ref"] = f"collection_data_{serial % 97}"
    doc["ref_id"] = f"ref-{serial}"
    doc["attachments"] = []
    doc["status"] = status
    doc["run_mode"] = _RUN_MODE_TABLE[d[46] % len(_RUN_MODE_TABLE)]
    doc["execution_type"] = "call"
    doc["assignee"] = f"agent-{d[47] % 8 + 1}"
    doc["task"] = _brief(d)
    doc["input"] = user_input
    doc["output"] = output
    doc["created"] = iso8601(created)
    doc["modified"] = iso8601(end + 5 + d[50] % 120)
    doc["scheduled_timestamp"] = None
    doc["retry_attempt"] = d[51] % 3 + 1 if status == "failed" else 0
    return doc


def render_task(seed: int, serial: int, *, strip_ids: bool = False) -> bytes:
    """The task's exact JSON bytes."""
    return _encode(task_document(seed, serial, strip_ids=strip_ids))


# --- the real shape -------------------------------------------------------------------------

_NULL_SPEAKER: Final = b'"user_id":null,' + _TS_KEY


def _speaker_prefixes(role: str, lines: tuple[str, ...], speaker: bytes) -> tuple[bytes, ...]:
    """Pre-encoded ``{"role":..,"content":..,"user_id":<speaker>`` fragments."""
    return tuple(p[: -len(_TS_KEY)] + speaker for p in _turn_prefixes(role, lines))


# Assistant turns end with their (null) speaker and the timestamp key; user turns with the
# "user_id" key, the contact's number following at render time.
_REAL_OPENERS: Final = _speaker_prefixes("assistant", _OPENER_LINES, _NULL_SPEAKER)
_REAL_AGENT: Final = _speaker_prefixes("assistant", _AGENT_LINE_VARIANTS, _NULL_SPEAKER)
_REAL_USER: Final = _speaker_prefixes("user", _USER_LINE_VARIANTS, b'"user_id":')
_REAL_VOICES: Final = (_REAL_OPENERS, _REAL_AGENT, _REAL_USER)
#: A real-shaped transcript has 4 + (draw % 9) turns.
_REAL_SPREAD: Final = 9
_END_REASONS: Final = (
    "customer-ended-call",
    "assistant-ended-call",
    "silence-timed-out",
    "voicemail",
)
_OUTCOME_WORDS: Final = {
    "Interested": "interested",
    "Call Back": "callback",
    "Not Interested": "not_interested",
    "Not Connected": "no_answer",
    "Voicemail": "voicemail",
    "Do Not Call": "do_not_call",
    "Wrong Number": "wrong_number",
}
_CAMPAIGNS: Final = ("spring-2026", "renewals", "win-back", "onboarding")
_EVAL_REASONS: Final = (
    "Objective met; the customer confirmed.",
    "Customer declined; handled politely.",
    "Could not verify identity.",
    "Callback agreed for a later time.",
)

IdStyle = str  # "mixed", "_id", "id" or "none"


def _provider_transcript(d: bytes, first_name: str) -> str:
    """A provider's transcript: one string, ``AI:`` / ``User:`` lines."""
    lines = [f"AI: {_OPENER_LINES[d[38] % len(_OPENER_LINES)]}"]
    for i in range(1, 4 + d[37] % _REAL_SPREAD):
        pick = d[64 + i]
        if i & 1:
            lines.append(f"User: {_USER_LINE_VARIANTS[pick % len(_USER_LINE_VARIANTS)]}")
        else:
            lines.append(f"AI: {_AGENT_LINE_VARIANTS[pick % len(_AGENT_LINE_VARIANTS)]}")
    return "\n".join(lines).replace("{name}", first_name)


def _uuid(b: bytes) -> str:
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _post_call_data(
    d: bytes, head: _RealHead, phone: str, start: int, summary: str
) -> dict[str, Any] | None:
    label = head.label
    if label is None:
        return None
    classification = _classification(d)
    if head.docs_form:
        return {
            "summary": summary,
            "outcome": _OUTCOME_WORDS[label],
            "sentiment": _SENTIMENTS[d[42] % len(_SENTIMENTS)],
            "classification": classification,
        }
    callback = label == "Call Back"
    hours = 2 + d[61] % 46 if callback else None
    data: dict[str, Any] = {
        "classification": classification,
        "summary": {
            "status": label,
            "summary": summary,
            "name": head.name,
            "contact": phone,
            "callback_datetime": _spaced(start + hours * 3600) if hours is not None else None,
            "hours_from_now": hours,
        },
        "success_evaluator": {
            "success": label in ("Interested", "Call Back"),
            "reason": _EVAL_REASONS[d[62] % len(_EVAL_REASONS)],
        },
        "follow_up": {"required": callback or d[43] < 60, "channel": ("call", "email")[d[43] & 1]},
        "call_evaluation": {"score": 1 + d[63] % 10, "notes": None},
        "profile_summary": f"{head.first[0]}, {_TIERS[d[30] % len(_TIERS)]} customer.",
        "realtime_agent_evaluation": None,
        "structured_data": {"units": 1 + d[31] % 9, "window": ("morning", "afternoon")[d[33] & 1]},
    }
    if callback and d[61] & 1:
        data["redial"] = {"attempt": 1 + d[51] % 3, "scheduled": True}
    return data


def _provider_output(
    d: bytes, head: _RealHead, summary: str, recording: str
) -> tuple[dict[str, Any], int]:
    """A provider-shaped ``output`` (camelCase, one transcript string) and the second the
    call ended."""
    start = _call_start(d, head.created)
    end = start + 20 + (d[39] << 1)
    output = {
        "id": _uuid(d[96:112]),
        "type": head.call_type,
        "status": "ended" if head.status != "in_progress" else "in-progress",
        "endedReason": _END_REASONS[d[41] % len(_END_REASONS)],
        "startedAt": iso8601(start)[:-1] + ".000Z",
        "endedAt": iso8601(end)[:-1] + ".000Z",
        "transcript": _provider_transcript(d, head.first[0]),
        "summary": summary,
        "recordingUrl": recording,
        "cost": round((end - start) * 0.0015, 4),
    }
    return output, end


def _executor_output(
    d: bytes, head: _RealHead, phone: str, summary: str, call_id: str, recording: str
) -> tuple[dict[str, Any], int]:
    """The call executor's ``output`` (the native shape) and the second the call ended."""
    start = _call_start(d, head.created)
    transcript: msgspec.Raw | None
    if head.label == "Not Connected":
        transcript = None if d[59] < 160 else msgspec.Raw(b"[]")
        end = start + 25
        duration: float | str = 0.0
        reason = "customer-did-not-answer"
    else:
        raw, end = _turns(d, start, head.first[0], _REAL_VOICES, spread=_REAL_SPREAD, speaker=phone)
        transcript = msgspec.Raw(raw)
        duration = float(end - start) + (d[39] % 10) / 10
        reason = _END_REASONS[d[41] % len(_END_REASONS)]
    cost: float | str = round(float(duration) * 0.0015, 4)
    if d[58] < 26:  # ~10%: numbers as strings, as some writers send them
        duration, cost = str(int(float(duration))), str(cost)
    output = {
        "call_id": call_id,
        "customer": head.name,
        "contact_number": phone,
        "call_end_reason": reason,
        "recording_url": recording,
        "transcript": transcript,
        "start_time": _spaced(start),
        "end_time": _spaced(end),
        "assistant_number": f"+1555010{d[47] % 8:04d}",
        "call_summary": summary,
        "duration": duration,
        "cost": cost,
        "call_type": head.call_type,
        "post_call_data": _post_call_data(d, head, phone, start, summary),
        "metadata": {"campaign": _CAMPAIGNS[d[46] % len(_CAMPAIGNS)], "attempt": 1 + d[51] % 3},
        "error": "SIP 480 Temporarily Unavailable" if head.status == "failed" else None,
        "notes": _NOTES[d[34] % len(_NOTES)] or None,
        "status_update": None,
    }
    return output, end


def run_of(serial: int) -> int:
    """The index of the run a task belongs to (tasks are created a run at a time)."""
    return serial // RUN_SIZE


def _run_stream(seed: int, run: int) -> bytes:
    return hashlib.blake2b(b"unpod-run:%d:%d" % (seed, run), digest_size=20).digest()


def run_id_of(seed: int, serial: int) -> str:
    """The ``run_id`` of a real-shaped task: shared by the tasks of its run."""
    return "R" + _run_stream(seed, run_of(serial))[:16].hex()


def assignee_of(seed: int, serial: int) -> str:
    """The agent handle a real-shaped task is assigned to: one per run, as the backend's
    ``create_run`` assigns a whole run to one agent (the 8 agents take the runs in turn)."""
    return f"agent-{(seed + run_of(serial)) % 8 + 1}"


def run_document(
    seed: int, run: int, records: list[TaskRecord], *, space_id: int = SPACE_ID
) -> dict[str, Any]:
    """A run as the backend's runs list sends it (its response model's fields), given the
    current records of its tasks (any order)."""
    d = _run_stream(seed, run)
    statuses = {rec.status for rec in records}
    if statuses <= {"completed"}:
        status = "completed"
    elif statuses & {"pending", "in_progress", "hold"}:
        status = "in_progress"
    else:
        status = "partially_completed"
    first = min((rec.created for rec in records), default=BASE_EPOCH + run * RUN_SIZE * 60)
    last = max((rec.created for rec in records), default=first)
    return {
        "space_id": str(space_id),
        "user": str(USERS[d[17] % len(USERS)]["id"]),
        "thread_id": None,
        "run_id": "R" + d[:16].hex(),
        "collection_ref": f"collection_data_{run % 97}",
        "run_mode": "prefect" if d[18] < 64 else "default",
        "status": status,
        "batch_count": len(records),
        "created": naive_iso(first - 5),
        "modified": naive_iso(last + 900),
    }


def real_task_document(
    seed: int,
    serial: int,
    *,
    ids: IdStyle = "mixed",
    poisoned: bool = False,
    space_id: int = SPACE_ID,
) -> dict[str, Any]:
    """The task as the real backend sends it, as a JSON-ready dict.

    ``ids``: ``"mixed"`` (per task: ``id`` for about half, ``_id`` for a third, neither for
    the rest), ``"_id"``, ``"id"`` or ``"none"``. ``poisoned`` gives it what makes the real
    server's response model refuse it (``execution_type: null``).
    """
    d = _body_stream(seed, serial)
    head = _RealHead(d, serial)
    created = head.created
    status = head.status
    phone = _phone(d)
    user_input = {
        "name": head.name,
        "phone": phone,
        "email": _email(head, d),
        "notes": _NOTES[d[34] % len(_NOTES)],
        **_extra(d),
    }
    summary = _SUMMARIES[d[40] % len(_SUMMARIES)]
    call_id = _call_id(d)
    recording = _recording_url(space_id, call_id)
    output: dict[str, Any]
    if not head.has_output:
        output, end = {}, created
    elif head.provider:
        output, end = _provider_output(d, head, summary, recording)
    else:
        output, end = _executor_output(d, head, phone, summary, call_id, recording)
    if ids == "mixed":
        ids = "id" if d[56] < 128 else "_id" if d[56] < 217 else "none"
    doc: dict[str, Any] = {}
    if ids in ("id", "_id"):
        doc[ids] = object_id(seed, serial, created)
    user = USERS[head.user]
    doc["space_id"] = space_id
    doc["thread_id"] = _thread_id(seed, serial, d)
    doc["user"] = user["id"]
    doc["user_org_id"] = 3
    doc["user_info"] = user
    doc["run_id"] = run_id_of(seed, serial)
    doc["task_id"] = head.task_id
    doc["collection_ref"] = f"collection_data_{run_of(serial) % 97}"
    doc["execution_type"] = None if poisoned else "call"
    doc["task"] = _brief(d)
    doc["input"] = user_input
    doc["output"] = output
    doc["attachments"] = []
    doc["ref_id"] = f"ref-{serial}" if d[50] < 180 else None
    doc["assignee"] = assignee_of(seed, serial)
    doc["run_mode"] = _RUN_MODE_TABLE[d[46] % len(_RUN_MODE_TABLE)]
    doc["status"] = status
    doc["created"] = naive_iso(created)
    modified = naive_iso(end + 5 + d[50] % 120)
    doc["modified"] = (
        modified + f".{(d[60] << 12 | d[61] << 4) % 1_000_000:06d}" if d[60] & 1 else modified
    )
    return doc


def render_real_task(
    seed: int,
    serial: int,
    *,
    ids: IdStyle = "mixed",
    poisoned: bool = False,
    space_id: int = SPACE_ID,
) -> bytes:
    """The real-shaped task's exact JSON bytes."""
    return _encode(real_task_document(seed, serial, ids=ids, poisoned=poisoned, space_id=space_id))
