"""The reference AI middleware: a small real HTTP server that implements the contract.

It lets a brand's bot run end to end before the company's own middleware exists: it checks
the shared secret (401), checks the request against the contract's JSON Schema (422 with the
reason), routes each message by keywords to one of the brand's categories and answers with a
deterministic canned text. Messages such as "simulate error" or "simulate timeout" show the
bot's failure paths on demand. It also takes the customers' feedback the bot forwards
(POST /feedback, checked against the schema's Feedback) and lists the latest (GET /feedback).

Messages it understands (anywhere in the message, any case):

- "simulate error": 503; "simulate status NNN": that status; "simulate timeout": no answer until the
  client gives up; "simulate bad answer": 200 with an HTML body; "simulate slow N": answers after N
  seconds; "simulate category X": an answer routed to category X; "simulate whoami": says which
  customer the bot named.

Streaming (`stream="sse"` or `"ndjson"`, `brandbot middleware --stream sse|ndjson`): every answer above
goes to a bot whose Accept header names that media type as a stream instead of one JSON body:
`{"category": ...}`, then the text in `{"delta": ...}` pieces (one a word, or `deltas` pieces of about
equal length) `token_seconds` apart, then `{"done": true}`. The deltas put together are exactly the
JSON answer's `response`. A client that does not accept the stream gets JSON, as without `stream`.
For `brandbot bench --stream`, GET /stream-times lists when each delta of the latest tagged answers
("[s7] ...") was written (`time.monotonic()`, a clock shared by every process on Linux).
These messages stream whatever the mode and the Accept header (in the `stream` format, SSE when none),
each with the answer the message would get otherwise:

- "simulate stream cut early": the category, then the connection closes abruptly mid-body (uvicorn
  logs "ASGI callable returned without completing response");
- "simulate stream cut": the category and about half the deltas, then the body ends, with no done;
- "simulate stream error": about half the deltas, then `{"error": "simulated failure"}`;
- "simulate stream malformed": about half the deltas, then a line (an event) that is not JSON;
- "simulate stream gap N": about half the deltas, N seconds of silence, then the rest and done;
- "simulate stream huge N": deltas of "lorem ipsum " totalling N bytes, 4 KB each, unpaced, then done;
- "simulate stream late category": the deltas, then `{"category": ...}` after them, then done;
- "simulate stream json": 200 with the stream's content type but one plain JSON body
  `{"response": ..., "category": null}`;
- "simulate stream code": the markdown answer STREAMED_MARKDOWN (a paragraph, a python code block,
  a table), streamed as any answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import unicodedata
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache, partial
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .brand_file import load_answers
from .rendered_project import brand_data, brand_data_for, category_label, words_of
from .template_paths import contract_schema

if TYPE_CHECKING:
    from brandbot_runtime import Brand

_WORD = re.compile(r"[^\W_]+")
_HOLD_SECONDS = 600.0
_FEEDBACK_KEPT = 100  # the latest feedbacks GET /feedback lists
_STREAM_TIMES_KEPT = 4096  # the latest tagged streamed answers GET /stream-times lists

STREAM_MEDIA_TYPES = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}
HUGE_DELTA_BYTES = 4096  # the size of each delta of "simulate stream huge N"
MALFORMED_LINE = '{"delta": "this line is not JSON'  # what "simulate stream malformed" sends
# The answer to "simulate stream code": markdown whose blocks arrive cut across deltas.
STREAMED_MARKDOWN = (
    "Here is how to check an order's status from a script, and what each status means.\n"
    "\n"
    "```python\n"
    "status = client.order_status(\"A-1042\")\n"
    "if status == \"shipped\":\n"
    "    print(\"On its way\")\n"
    "```\n"
    "\n"
    "| Status | Meaning | Typical wait |\n"
    "| --- | --- | --- |\n"
    "| received | We have your order | 1 hour |\n"
    "| packed | It is ready to leave | 1 day |\n"
    "| shipped | The courier has it | 2 days |\n"
)

# Words that commonly name a support desk, grouped so that asking about "my parcel" finds the
# desk labelled "Order Tracking". Each group carries the canned answer for its topic, in English
# and Spanish (the brand's `language` picks one; other languages get English).
_TOPICS: tuple[tuple[frozenset[str], dict[str, str]], ...] = (
    (frozenset("order orders track tracking parcel package delivery shipping shipped courier "
               "pedido pedidos envio entrega".split()),
     {"en": "Your order left our warehouse yesterday and should arrive within 2 business days. "
            "The tracking link is in your confirmation email.",
      "es": "Tu pedido salió ayer de nuestro almacén y debería llegar en 2 días hábiles. "
            "El enlace de seguimiento está en tu correo de confirmación."}),
    (frozenset("return returns refund refunds exchange devolucion reembolso".split()),
     {"en": "You can return any item within 30 days for a full refund. Start the return from "
            "your account page and drop the parcel at any post office.",
      "es": "Puedes devolver cualquier artículo en un plazo de 30 días y te reembolsamos el importe completo."}),
    (frozenset("product products size sizes stock material price inquiry producto".split()),
     {"en": "That item is in stock in all sizes. It is machine-washable and comes with a 2-year warranty.",
      "es": "Ese artículo está disponible en todas las tallas y tiene 2 años de garantía."}),
    (frozenset("bill billing invoice payment payments charge charged factura pago".split()),
     {"en": "Your latest invoice is available in your account. Payments usually show within 1 business day.",
      "es": "Tu última factura está disponible en tu cuenta. Los pagos se reflejan en 1 día hábil."}),
    (frozenset("card cards tarjeta tarjetas blocked block lost stolen bloquear".split()),
     {"en": "I have noted your card request. For your security a new card can be sent within 5 business days.",
      "es": "He bloqueado tu tarjeta por seguridad. Recibirás una nueva en un plazo de 5 días hábiles."}),
    (frozenset("loan loans mortgage credit prestamo prestamos hipoteca credito".split()),
     {"en": "Our loan specialists can prepare an offer for you. Rates depend on the amount and the term you choose.",
      "es": "Nuestros especialistas pueden prepararte una oferta. El interés depende del importe y del plazo."}),
    (frozenset("account accounts cuenta cuentas transfer transferencia".split()),
     {"en": "Your account is active. Transfers between your own accounts are instant.",
      "es": "Tu cuenta está activa. Las transferencias entre tus propias cuentas son inmediatas."}),
    (frozenset("fraud fraude suspicious sospechoso phishing".split()),
     {"en": "Thank you for telling us. We have flagged the activity and our fraud team will contact you today.",
      "es": "Gracias por avisarnos. Hemos marcado la operación y nuestro equipo de fraude te contactará hoy."}),
    (frozenset("network signal coverage outage internet wifi router".split()),
     {"en": "There is no known outage in your area. Restarting your router fixes most connection problems."}),
    (frozenset("plan plans upgrade contract tariff data roaming".split()),
     {"en": "You can change your plan at any time from the app; the new plan starts on your next billing day."}),
    (frozenset("device devices phone phones handset repair broken screen".split()),
     {"en": "Device repairs take about 5 business days. Bring the device to any of our stores."}),
)
_GREETING = {
    "en": "Hello! I'm the reference middleware standing in for your AI back end. How can I help?",
    "es": "¡Hola! Soy el middleware de referencia que sustituye a tu back end de IA. ¿En qué puedo ayudarte?",
}
_GENERIC = {
    "en": "Our {label} team has your question and will follow up by email within one business day.",
    "es": "Nuestro equipo de {label} tiene tu consulta y te responderá por correo en un día hábil.",
}


def _wording_for(language: str, wordings: dict[str, str]) -> str:
    """The wording for a language family, English otherwise."""
    return wordings.get(language.split("-")[0], wordings["en"])


def words(text: str) -> set[str]:
    """Lower-case words of a text, camel case split as the bot splits a category id, with a crude plural folded in."""
    found = set()
    for token in _WORD.findall(text):
        for word in _WORD.findall(words_of(token, whole=True)):
            word = word.lower()
            found.add(word)
            if len(word) > 3 and word.endswith("s"):
                found.add(word[:-1])
    return {_fold_accents(word) for word in found}


def _fold_accents(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


@dataclass(frozen=True)
class Desk:
    """A category the middleware routes to: its id, label, keywords and canned answer."""

    category: str
    label: str
    keywords: frozenset[str]
    answer: str


def desks_for(brand: Brand) -> list[Desk]:
    """One desk per specialist category of the brand."""
    found = []
    for category, details in brand.categories.items():
        label = category_label(category, details.label)
        own = words(category) | words(label)
        keywords = set(own)
        answer = _wording_for(brand.language, _GENERIC).replace("{label}", label)
        for topic, canned in _TOPICS:
            if own & topic:
                keywords |= topic
                answer = _wording_for(brand.language, canned)
                break
        found.append(Desk(category, label, frozenset(keywords), answer))
    return found


@dataclass(frozen=True)
class Decision:
    """What to do with one message."""

    status: int = 200
    body: dict[str, Any] | None = None
    raw: bytes | None = None
    hold: bool = False
    delay: float = 0.0
    stream: str | None = None  # a streaming simulation: "cut early", "cut", "error", "gap", ...
    amount: float = 0.0  # its N: the seconds of "gap N", the bytes of "huge N"


class Router:
    """Routes a message to a desk by keywords, or to the brand's first general category."""

    def __init__(self, brand: Brand) -> None:
        self.desks = desks_for(brand)
        self.greeting = _wording_for(brand.language, _GREETING)
        self.general_category = brand.general_categories[0] if brand.general_categories else None

    def decide(self, message: str) -> Decision:
        """The canned answer, or a simulated failure when the message asks for one."""
        lowered = message.lower()
        if "simulate stream " in lowered:
            streamed = _stream_simulation(lowered)
            if streamed is not None:
                rest = _STREAM_SIMULATION.sub(" ", message)
                routed = self.decide(rest)
                if not (routed.body and "response" in routed.body):  # another simulation that is no answer
                    routed = self.route(rest)
                if streamed.stream == "code":
                    routed = replace(routed, body={**(routed.body or {}), "response": STREAMED_MARKDOWN})
                return replace(streamed, body=routed.body, delay=routed.delay)
        if "simulate" in lowered:
            forced = re.search(r"simulate category ([A-Za-z][\w.-]*[\w-])", message)
            if forced:
                return self._answer_as(forced.group(1))
            simulated = _simulation(lowered)
            if simulated is not None:
                return simulated
        return self.route(message)

    def route(self, message: str) -> Decision:
        """The canned answer of the desk whose keywords the message says most, else the greeting."""
        said = words(message)
        best = max(self.desks, key=lambda desk: len(desk.keywords & said), default=None)
        if best is not None and best.keywords & said:
            return Decision(body={"response": best.answer, "category": best.category})
        return Decision(body={"response": self.greeting, "category": self.general_category})

    def _answer_as(self, category: str) -> Decision:
        """An answer routed to `category` whatever the message says (for tests and demos)."""
        desk = next((desk for desk in self.desks if desk.category == category), None)
        response = desk.answer if desk else f"This answer is routed to {category}."
        return Decision(body={"response": response, "category": category})


def who_is_writing(customer: Any) -> str:
    """The answer to "simulate whoami": who the bot says writes (the contract's Customer)."""
    if not isinstance(customer, dict):
        return "You are not named: this bot sends no customer (before 0.6.0)."
    if customer.get("verified"):
        claims = ", ".join(f"{name}={value}" for name, value in sorted((customer.get("claims") or {}).items()))
        return f"You are verified customer {customer['id']}" + (f" ({claims})." if claims else ".")
    return "You are an anonymous visitor."


def _simulation(lowered: str) -> Decision | None:
    if "simulate timeout" in lowered:
        return Decision(hold=True)
    if "simulate error" in lowered:
        return Decision(status=503, body={"detail": "simulated outage"})
    if "simulate bad answer" in lowered:
        return Decision(raw=b"<html><body>502 Bad Gateway</body></html>")
    status = re.search(r"simulate status (\d{3})", lowered)
    if status:
        return Decision(status=int(status.group(1)), body={"detail": "simulated status"})
    slow = re.search(r"simulate slow (\d+(?:\.\d+)?)", lowered)
    if slow:
        return Decision(body={"response": "Sorry for the wait!", "category": None}, delay=float(slow.group(1)))
    return None


_STREAM_SIMULATION = re.compile(
    r"simulate stream (?:cut early|cut|error|malformed|gap \d+(?:\.\d+)?|huge \d+|late category|json|code)",
    re.IGNORECASE)


def _stream_simulation(lowered: str) -> Decision | None:
    """The streaming simulation a message asks for ("simulate stream cut", ...), without its answer yet."""
    found = _STREAM_SIMULATION.search(lowered)
    if found is None:
        return None
    kind = found.group(0).removeprefix("simulate stream ")
    name, _, amount = kind.partition(" ")
    if name in ("gap", "huge"):
        return Decision(stream=name, amount=float(amount))
    return Decision(stream=kind)


_WORD_PIECE = re.compile(r"\s*\S+\s*")


def _joins_previous(text: str, at: int) -> bool:
    """Whether text[at] belongs to the character before it (a combining mark, an emoji's modifier or ZWJ)."""
    char = text[at]
    return (unicodedata.category(char).startswith("M") or char == "\u200d" or text[at - 1] == "\u200d"
            or "\ufe00" <= char <= "\ufe0f" or "\U0001f3fb" <= char <= "\U0001f3ff")


def split_text(text: str, pieces: int | None = None) -> list[str]:
    """The deltas of a streamed answer; put together they are `text` exactly.

    None: one piece a word, with the white space after it (white space before the first word goes with it).
    A number: that many pieces of about equal length, fewer for a shorter text, none cut inside a character;
    a leading session tag ("[s7] ", the benchmark's bookkeeping) is the first piece, whole: it is not content,
    and cut in two it held back the first token shown (a word shows once complete) as no real answer would.
    """
    tag = _SESSION_TAG.match(text)
    if tag and pieces is not None and pieces > 1 and tag.end() < len(text):
        return [tag.group(0), *split_text(text[tag.end():], pieces - 1)]
    if pieces is None:
        return _WORD_PIECE.findall(text) or ([text] if text else [])
    cuts = [0]
    for index in range(1, pieces):
        at = max(round(index * len(text) / pieces), cuts[-1])
        while 0 < at < len(text) and _joins_previous(text, at):
            at += 1
        cuts.append(at)
    cuts.append(len(text))
    return [text[start:end] for start, end in pairwise(cuts) if end > start]


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an Accept header names `media_type` (wildcards do not count; q=0 refuses it)."""
    for item in (accept or "").split(","):
        kind, *parameters = (part.strip().lower() for part in item.split(";"))
        if kind == media_type and not any(re.fullmatch(r"q\s*=\s*0(\.0*)?", p) for p in parameters):
            return True
    return False


def _frame(stream: str, line: str) -> bytes:
    """One line (one JSON object, or anything) framed as an SSE event or an NDJSON line."""
    return (f"data: {line}\n\n" if stream == "sse" else f"{line}\n").encode()


def _event(stream: str, event: dict[str, Any]) -> bytes:
    return _frame(stream, json.dumps(event, ensure_ascii=False))


def _lorem(total: int) -> Iterator[str]:
    """Deltas of repeated "lorem ipsum " totalling `total` bytes, HUGE_DELTA_BYTES each (made as they go)."""
    unit = "lorem ipsum "
    pattern = unit * (HUGE_DELTA_BYTES // len(unit) + 2)
    for start in range(0, total, HUGE_DELTA_BYTES):
        yield pattern[start % len(unit):][:min(HUGE_DELTA_BYTES, total - start)]


def stream_headers(media_type: str) -> dict[str, str]:
    """No cache, and for SSE no proxy buffering (nginx's X-Accel-Buffering), so each event leaves at once."""
    headers = {"Cache-Control": "no-cache"}
    if media_type == STREAM_MEDIA_TYPES["sse"]:
        headers["X-Accel-Buffering"] = "no"
    return headers


class StreamedAnswer(StreamingResponse):
    """A streamed answer. `ended` callbacks run once it is over (sent, cut or the client gone).

    `abrupt`: after the last chunk the connection closes without the body's end (the server sees an app
    that returned without completing its response), as when a middleware crashes mid-answer.
    """

    def __init__(self, content: AsyncIterator[bytes], media_type: str, *, abrupt: bool = False) -> None:
        super().__init__(content, media_type=media_type, headers=stream_headers(media_type))
        self.abrupt = abrupt
        self.ended: list[Callable[[], None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for callback in self.ended:
                callback()

    async def stream_response(self, send: Send) -> None:
        if not self.abrupt:
            await super().stream_response(send)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def routing_for(path: Path | None) -> Brand:
    """The brand to route for, from a brand file (YAML answers), brand data (a brand.toml) or a project.

    Raises BrandFileError (a brand file) or ProjectError (brand data) with a sentence a user can act on.
    """
    if path is None:
        return brand_data_for({"brand_name": "Reference"})
    if path.is_dir():
        path = path / "brand.toml"
    if path.suffix == ".toml":
        return brand_data(path)
    return brand_data_for(load_answers(path))


@cache
def schema_validator(definition: str) -> Callable[[Any], Any]:
    """One of the contract's definitions, read from the schema every project ships, compiled once.

    fastjsonschema compiles the schema to Python: about 60 µs for a 41-turn history where
    jsonschema's interpreter takes about 1 ms, which the middleware would add to every answer.
    """
    schema = json.loads(contract_schema().read_text(encoding="utf-8"))
    return fastjsonschema.compile({**schema, "$ref": f"#/$defs/{definition}"})


def request_validator() -> Callable[[Any], Any]:
    """The contract's ChatRequest schema."""
    return schema_validator("ChatRequest")


def schema_problem(definition: str, payload: Any) -> str | None:
    """Why a body breaks the contract's `definition`, as `where: why`, or None."""
    try:
        schema_validator(definition)(payload)
    except fastjsonschema.JsonSchemaException as error:
        where = "/".join(str(part) for part in error.path[1:]) or "body"
        why = re.sub(r"^data(\.[\w.\[\]]+)? ", "", error.message)
        return f"{where}: {why}"
    return None


def contract_problem(payload: Any) -> str | None:
    """Why a request body breaks the contract, as `where: why`, or None."""
    problem = schema_problem("ChatRequest", payload)
    if problem:
        return problem
    last = payload["history"][-1]
    if last != {"role": "user", "content": payload["message"]}:
        return "history: the last item must be the current message with role 'user'"
    return None


@dataclass
class Stats:
    """Counts for /stats, so tests can see what the middleware saw."""

    requests: int = 0
    answered: int = 0
    rejected: int = 0
    crossed_sessions: int = 0
    largest_request_bytes: int = 0
    longest_history: int = 0
    most_in_flight: int = 0  # requests being answered at the same moment, at most
    most_in_flight_per_session: int = 0  # the same, for one tagged session ("[s7] ...")
    feedback: int = 0  # Feedback objects taken (POST /feedback answered 204)
    streamed: int = 0  # answers sent as a stream of events (normal or a "simulate stream ..." one)


_SESSION_TAG = re.compile(r"^\[([A-Za-z0-9_-]{1,40})\] ")


def crossed_session(payload: dict[str, Any]) -> bool:
    """Whether a tagged message ("[s7] ...") arrives with history from another conversation.

    Load tests tag every message with their session; the middleware answers with the same tag,
    so every turn of a session's history must carry it.
    """
    tag = _SESSION_TAG.match(payload["message"])
    if tag is None:
        return False
    prefix = tag.group(0)
    return any(not turn["content"].startswith(prefix) for turn in payload["history"])


def create_app(brand: Brand, *, secret: str, auth_header: str = "x-secret",
               latency_seconds: float = 0.0, stream: str | None = None, token_seconds: float = 0.02,
               deltas: int | None = None) -> Starlette:
    """The middleware as an ASGI app: POST /chat, POST and GET /feedback, GET /health, GET /stats,
    GET /stream-times.

    `stream` ("sse" or "ndjson"): answers go as that stream to a bot that accepts it, in `deltas` pieces
    (None: one a word) `token_seconds` apart.
    """
    if stream is not None and stream not in STREAM_MEDIA_TYPES:
        raise ValueError(f"stream must be one of {', '.join(STREAM_MEDIA_TYPES)}, not {stream!r}")
    if deltas is not None and deltas < 1:
        raise ValueError("deltas must be at least 1")
    if token_seconds < 0:
        raise ValueError("token_seconds must not be negative")
    router = Router(brand)
    stats = Stats()
    expected = secret.encode()
    in_flight: Counter[str] = Counter()
    feedbacks: deque[dict[str, Any]] = deque(maxlen=_FEEDBACK_KEPT)
    # Tagged streamed answers, latest last: {"n": a running number, "tag": "s7", "deltas": [monotonic, ...]}.
    stream_times: deque[dict[str, Any]] = deque(maxlen=_STREAM_TIMES_KEPT)

    def leave(key: str) -> None:
        in_flight[key] -= 1

    def out_of_flight(response: Response, key: str) -> Response:
        """Count a request out of flight once its answer is sent: now, or when its stream is over."""
        if isinstance(response, StreamedAnswer):
            response.ended.append(partial(leave, key))
        else:
            leave(key)
        return response

    async def chat(request: Request) -> Response:
        stats.requests += 1
        in_flight["*"] += 1
        stats.most_in_flight = max(stats.most_in_flight, in_flight["*"])
        try:
            response = await answer(request)
        except BaseException:
            leave("*")
            raise
        return out_of_flight(response, "*")

    def refused(request: Request) -> Response | None:
        """401 when the secret header is missing or wrong (compared in constant time)."""
        given = request.headers.get(auth_header, "").encode()
        if hmac.compare_digest(given, expected):
            return None
        stats.rejected += 1
        return JSONResponse({"detail": f"missing or wrong {auth_header} header"}, status_code=401)

    async def answer(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        raw = await request.body()
        stats.largest_request_bytes = max(stats.largest_request_bytes, len(raw))
        try:
            payload = json.loads(raw)
        except ValueError:
            stats.rejected += 1
            return JSONResponse({"detail": "body: not valid JSON"}, status_code=422)
        problem = contract_problem(payload)
        if problem:
            stats.rejected += 1
            return JSONResponse({"detail": problem}, status_code=422)
        stats.longest_history = max(stats.longest_history, len(payload["history"]))
        if crossed_session(payload):
            stats.crossed_sessions += 1
            stats.rejected += 1
            return JSONResponse({"detail": "history holds another session's turns"}, status_code=409)
        tag = _SESSION_TAG.match(payload["message"])
        session = "session " + tag.group(1) if tag else "untagged"
        in_flight[session] += 1
        stats.most_in_flight_per_session = max(stats.most_in_flight_per_session, in_flight[session])
        try:
            response = await decide(request, payload, tag)
        except BaseException:
            leave(session)
            raise
        return out_of_flight(response, session)

    async def decide(request: Request, payload: dict[str, Any], tag: re.Match[str] | None) -> Response:
        decision = router.decide(payload["message"])
        if "simulate whoami" in payload["message"].lower():
            decision = Decision(body={"response": who_is_writing(payload.get("customer")), "category": None},
                                stream=decision.stream, amount=decision.amount)
        if latency_seconds or decision.delay:
            await asyncio.sleep(latency_seconds + decision.delay)
        if decision.hold:
            await _hold(request)
            return Response(status_code=504)
        stats.answered += 1
        if decision.raw is not None:
            return Response(decision.raw, media_type="text/html")
        body = decision.body
        if tag and body is not None and "response" in body:
            body = {**body, "response": tag.group(0) + body["response"]}
        if decision.stream is not None or (
                stream and decision.status == 200 and body is not None and "response" in body
                and accepts(request.headers.get("accept"), STREAM_MEDIA_TYPES[stream])):
            return streamed(decision, body or {}, stream or "sse", tag.group(1) if tag else None)
        return JSONResponse(body, status_code=decision.status)

    def streamed(decision: Decision, body: dict[str, Any], form: str, tag: str | None) -> Response:
        """The answer as a stream in `form` ("sse" or "ndjson"), or the stream simulation it asks for."""
        media_type = STREAM_MEDIA_TYPES[form]
        if decision.stream == "json":
            plain = json.dumps({"response": body.get("response"), "category": None}, ensure_ascii=False)
            return Response(plain, media_type=media_type, headers=stream_headers(media_type))
        stats.streamed += 1
        times: list[float] = []
        if tag is not None:
            stream_times.append({"n": stats.streamed, "tag": tag, "deltas": times})
        events = stream_events(decision, body.get("response") or "", body.get("category"), form, times)
        return StreamedAnswer(events, media_type, abrupt=decision.stream == "cut early")

    async def stream_events(decision: Decision, text: str, category: str | None, form: str,
                            times: list[float]) -> AsyncIterator[bytes]:
        """The answer's events; `times` gets the moment each delta is written (time.monotonic())."""
        kind = decision.stream
        if kind == "huge":
            yield _event(form, {"category": category})
            for piece in _lorem(int(decision.amount)):
                yield _event(form, {"delta": piece})
                await asyncio.sleep(0)
            yield _event(form, {"done": True})
            return
        if kind != "late category":
            yield _event(form, {"category": category})
        if kind == "cut early":
            return
        pieces = split_text(text, deltas)
        half = (len(pieces) + 1) // 2 if kind in ("cut", "error", "malformed", "gap") else len(pieces)
        sent = 0
        for piece in pieces[:half]:
            if sent and token_seconds:
                await asyncio.sleep(token_seconds)
            sent += 1
            times.append(time.monotonic())
            yield _event(form, {"delta": piece})
        if kind == "cut":
            return
        if kind == "error":
            yield _event(form, {"error": "simulated failure"})
            return
        if kind == "malformed":
            yield _frame(form, MALFORMED_LINE)
            return
        if kind == "gap":
            await asyncio.sleep(decision.amount)
        for piece in pieces[half:]:
            if sent and token_seconds:
                await asyncio.sleep(token_seconds)
            sent += 1
            times.append(time.monotonic())
            yield _event(form, {"delta": piece})
        if kind == "late category":
            yield _event(form, {"category": category or "General"})
        yield _event(form, {"done": True})

    async def take_feedback(request: Request) -> Response:
        """A customer's thumbs on an answer: checked against the schema's Feedback and kept (204), or a
        simulated failure when the comment asks for one ("simulate status 500")."""
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            payload = json.loads(await request.body())
        except ValueError:
            stats.rejected += 1
            return JSONResponse({"detail": "body: not valid JSON"}, status_code=422)
        problem = schema_problem("Feedback", payload)
        if problem:
            stats.rejected += 1
            return JSONResponse({"detail": problem}, status_code=422)
        simulated = re.search(r"simulate status (\d{3})", (payload["comment"] or "").lower())
        if simulated:
            return JSONResponse({"detail": "simulated status"}, status_code=int(simulated.group(1)))
        stats.feedback += 1
        feedbacks.append(payload)
        return Response(status_code=204)

    async def list_feedback(request: Request) -> Response:
        """The latest feedbacks taken, oldest first (they hold customers' comments: secret required)."""
        if (refusal := refused(request)) is not None:
            return refusal
        return JSONResponse(list(feedbacks))

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def show_stats(request: Request) -> Response:
        return JSONResponse(stats.__dict__)

    async def show_stream_times(request: Request) -> Response:
        """The tagged streamed answers after number `after` (all kept when not given), oldest first."""
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return JSONResponse({"detail": "after: not a number"}, status_code=422)
        return JSONResponse({"answers": [answer for answer in stream_times if answer["n"] > after]})

    return Starlette(routes=[
        Route("/chat", chat, methods=["POST"]),
        Route("/feedback", take_feedback, methods=["POST"]),
        Route("/feedback", list_feedback, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/stats", show_stats, methods=["GET"]),
        Route("/stream-times", show_stream_times, methods=["GET"]),
    ])


async def _hold(request: Request) -> None:
    """Keep a simulated timeout open until the client gives up (or ten minutes pass)."""
    deadline = asyncio.get_running_loop().time() + _HOLD_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.2)


def serve(brand: Brand, *, host: str, port: int, secret: str, auth_header: str,
          latency_seconds: float, stream: str | None = None, token_seconds: float = 0.02,
          deltas: int | None = None) -> None:
    """Run the middleware until interrupted."""
    import uvicorn

    app = create_app(brand, secret=secret, auth_header=auth_header, latency_seconds=latency_seconds,
                     stream=stream, token_seconds=token_seconds, deltas=deltas)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
