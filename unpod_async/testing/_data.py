"""Deterministic generation of fake Unpod tasks.

Every task is a pure function of ``(seed, serial)``: ``serial`` numbers tasks in creation order
(0 is the oldest), so the server order (newest first) is descending serial. The cheap fields that
the simulator filters on (``task_id``, ``status``, ``call_type``, ``created``, ``input.name``) are
drawn first; the full document is rendered to JSON bytes on demand and cached by the caller.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

import msgspec

__all__ = [
    "BASE_EPOCH",
    "TaskRecord",
    "iso8601",
    "make_record",
    "object_id",
    "render_task",
    "task_document",
]

#: ``created`` of serial 0: 2026-01-01T00:00:00Z. Each later task is created one minute later.
BASE_EPOCH: Final = 1_767_225_600

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


_OPENER_TURNS: Final = _turn_prefixes("agent", _expand(_AGENT_OPENERS, 1))
_AGENT_TURNS: Final = _turn_prefixes("agent", _expand(_AGENT_LINES, 8))
_USER_TURNS: Final = _turn_prefixes("user", _expand(_USER_LINES, 8))
_NAME_SLOT: Final = b"{name}"

_DAY_PREFIX: dict[int, str] = {}
_DAY_PREFIX_B: dict[int, bytes] = {}
_TIME_OF_DAY: list[str] = []
_TURN_TAILS: list[bytes] = []


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
    return _TIME_OF_DAY


def iso8601(ts: int) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (fast, cached)."""
    day, sod = divmod(ts, 86_400)
    return _day_prefix(day) + _time_of_day()[sod]


class TaskRecord:
    """What the simulator keeps per task: filterable fields plus the cached JSON bytes."""

    __slots__ = ("call_type", "created", "name", "raw", "search_key", "serial", "status", "task_id")

    def __init__(
        self,
        serial: int,
        created: int,
        task_id: str,
        status: str,
        call_type: str | None,
        name: str,
    ) -> None:
        self.serial = serial
        self.created = created
        self.task_id = task_id
        self.status = status
        self.call_type = call_type
        self.name = name
        self.search_key = f"{name}\n{task_id}".lower()
        self.raw: bytes | None = None


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

    def __init__(self, d: bytes, serial: int) -> None:
        # d[0:16] task_id, d[16] jitter, d[17] status, d[18] first, d[19] last, d[20] output,
        # d[21] call type.
        self.created = BASE_EPOCH + serial * 60 + d[16] % 60
        self.task_id = "T" + d[:16].hex()
        status = _STATUS_TABLE[d[17] % len(_STATUS_TABLE)]
        self.status = status
        self.first = _FIRST[d[18] % len(_FIRST)]
        self.last = _LAST[d[19] % len(_LAST)]
        self.name = f"{self.first[0]} {self.last[0]}"
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


def make_record(seed: int, serial: int) -> TaskRecord:
    """Build the cheap per-task record (no JSON rendering)."""
    head = _Head(_head_stream(seed, serial), serial)
    return TaskRecord(serial, head.created, head.task_id, head.status, head.call_type, head.name)


def object_id(seed: int, serial: int, created: int) -> str:
    """ObjectId-like ``_id``: 8 hex of the creation time, then a 16 hex counter.

    ``created`` grows with ``serial``, so ids strictly increase with creation order.
    """
    return f"{created:08x}{((seed & 0xFFFF) << 40) + serial:016x}"


def task_document(seed: int, serial: int, *, strip_ids: bool = False) -> dict[str, Any]:
    """The full task as a JSON-ready dict."""
    d = _body_stream(seed, serial)
    head = _Head(d, serial)
    created = head.created
    status = head.status
    first_name = head.first[0]
    # Body draws: fixed offsets 24..63, transcript 64..95, ids 96..127.
    email = (
        f"{head.first[1]}.{head.last[1]}{(d[24] << 8 | d[25]) % 1000}"
        f"@{_DOMAINS[d[26] % len(_DOMAINS)]}"
    )
    phone = f"+1555{int.from_bytes(d[27:30], 'big') % 10_000_000:07d}"
    custom: dict[str, Any] = {"tier": _TIERS[d[30] % len(_TIERS)], "visits": d[31] % 12}
    if d[32] < 51:
        custom["company"] = _COMPANIES[d[33] % len(_COMPANIES)]
    elif d[32] < 77:
        custom["language"] = _LANGUAGES[d[33] % len(_LANGUAGES)]
    user_input = {
        "name": head.name,
        "contact_number": phone,
        "email": email,
        "notes": _NOTES[d[34] % len(_NOTES)],
        "custom": custom,
    }
    output: dict[str, Any]
    end = created
    if head.has_output:
        start = created + 30 + (d[35] << 8 | d[36]) % 600
        turns = 4 + d[37] % 13
        # The transcript is the bulk of a task: assemble it from pre-encoded fragments.
        name_json = _encode(first_name)[1:-1]
        _time_of_day()
        tails = _TURN_TAILS
        day, sod = divmod(start, 86_400)
        _day_prefix(day)
        day_b = _DAY_PREFIX_B[day]
        parts = [
            _OPENER_TURNS[d[38] % len(_OPENER_TURNS)].replace(_NAME_SLOT, name_json)
            + day_b
            + tails[sod]
        ]
        sod += 2 + d[64] % 20
        n_agent = len(_AGENT_TURNS)
        n_user = len(_USER_TURNS)
        for i in range(1, turns):
            if sod >= 86_400:
                day += 1
                sod -= 86_400
                _day_prefix(day)
                day_b = _DAY_PREFIX_B[day]
            pick = d[64 + i]
            turn = _USER_TURNS[pick % n_user] if i & 1 else _AGENT_TURNS[pick % n_agent]
            if _NAME_SLOT in turn:
                turn = turn.replace(_NAME_SLOT, name_json)
            parts.append(turn + day_b + tails[sod])
            sod += 2 + d[80 + i] % 20
        transcript = msgspec.Raw(b"[" + b",".join(parts) + b"]")
        end = day * 86_400 + sod
        duration = float(end - start) + (d[39] % 10) / 10
        call_id = "call_" + d[96:104].hex()
        if status in ("completed", "partially_completed"):
            call_status = "completed"
        elif status == "failed":
            call_status = "failed"
        elif status == "in_progress":
            call_status = "in_progress"
        else:
            call_status = "no_answer"
        output = {
            "call_id": call_id,
            "call_type": head.call_type,
            "call_status": call_status,
            "duration": duration,
            "start_time": iso8601(start),
            "end_time": iso8601(end),
            "recording_url": f"https://recordings.example/4242/{call_id}.mp3",
            "cost": round(duration * 0.0015, 4),
            "transcript": transcript,
            "post_call_data": {
                "summary": _SUMMARIES[d[40] % len(_SUMMARIES)],
                "outcome": _OUTCOMES[d[41] % len(_OUTCOMES)],
                "sentiment": _SENTIMENTS[d[42] % len(_SENTIMENTS)],
                "follow_up_required": d[43] < 90,
                "classification": {
                    "label": _LABELS[d[44] % len(_LABELS)],
                    "confidence": 0.5 + (d[45] % 50) / 100,
                },
            },
            "user_info": {"name": head.name, "contact_number": phone, "email": email},
        }
    else:
        output = {}
    doc: dict[str, Any] = {}
    if not strip_ids:
        doc["_id"] = object_id(seed, serial, created)
    doc["task_id"] = head.task_id
    doc["run_id"] = "R" + d[104:120].hex()
    doc["space_id"] = 4242
    doc["user"] = 17
    doc["user_org_id"] = 3
    doc["collection_ref"] = f"collection_data_{serial % 97}"
    doc["ref_id"] = f"ref-{serial}"
    doc["attachments"] = []
    doc["status"] = status
    doc["run_mode"] = _RUN_MODE_TABLE[d[46] % len(_RUN_MODE_TABLE)]
    doc["execution_type"] = "call"
    doc["assignee"] = f"agent-{d[47] % 8 + 1}"
    doc["task"] = {
        "objective": _OBJECTIVES[d[48] % len(_OBJECTIVES)],
        "instructions": _INSTRUCTIONS[d[49] % len(_INSTRUCTIONS)],
    }
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
