"""What the demo AI knows: intents with their cue phrases, canned answers and playbooks for the human.

Data only; `brain.py` does the scoring. Phrases match whole words in the lower-cased message; keywords match
single words (a trailing plural "s" is tolerated).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Play:
    kind: str  # reply | action | link
    title: str
    body: str


# Skills match the demo staff (`desk/demo.py`): billing, technical, general.
@dataclass(frozen=True)
class Intent:
    name: str
    label: str
    topic: str
    skills: tuple[str, ...]
    phrases: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str | None  # None: the AI recognises the request but a person must handle it
    plays: tuple[Play, ...] = ()
    smalltalk: bool = False


INTENTS: tuple[Intent, ...] = (
    Intent(
        name="opening_hours",
        label="opening hours",
        topic="store",
        skills=(),
        phrases=(
            "opening hours",
            "business hours",
            "open on",
            "are you open",
            "when do you open",
            "when do you close",
            "what time do you",
            "closing time",
        ),
        keywords=("open", "opening", "hours", "close", "closing", "closed", "weekend", "saturday", "sunday"),
        answer=(
            "We're open Monday to Friday 9:00-18:00 and Saturday 10:00-14:00 (CET). "
            "We're closed on Sundays and public holidays."
        ),
        plays=(
            Play("link", "Opening hours page", "https://example.com/help/opening-hours"),
            Play("action", "Offer a callback", "Schedule a callback for the next opening hour if it is urgent."),
        ),
    ),
    Intent(
        name="shipping_times",
        label="shipping times",
        topic="shipping",
        skills=("general",),
        phrases=(
            "how long does shipping",
            "how long does delivery",
            "how long will it take",
            "shipping time",
            "delivery time",
            "when will it arrive",
            "express shipping",
            "international shipping",
            "ship to",
        ),
        keywords=(
            "shipping",
            "ship",
            "delivery",
            "deliver",
            "arrive",
            "express",
            "international",
            "dispatch",
        ),
        answer=(
            "Standard shipping takes 3-5 business days and express 1-2 business days. "
            "International orders usually arrive within 7-14 business days."
        ),
        plays=(
            Play("action", "Check carrier delays", "Look for carrier delays in the customer's region."),
            Play("link", "Shipping options", "https://example.com/help/shipping"),
        ),
    ),
    Intent(
        name="password_reset",
        label="password reset",
        topic="account",
        skills=("technical",),
        phrases=(
            "reset my password",
            "reset password",
            "forgot my password",
            "forgot password",
            "change my password",
            "can't log in",
            "cannot log in",
            "can't sign in",
            "cannot sign in",
            "locked out",
        ),
        keywords=("password", "reset", "login", "locked", "forgot"),
        answer=(
            'You can reset your password from the sign-in page: choose "Forgot password?" and we\'ll email '
            "you a link that is valid for 30 minutes. If it doesn't arrive within a few minutes, check your "
            "spam folder."
        ),
        plays=(
            Play("action", "Send a reset link", "Trigger a password reset email from the account admin page."),
            Play("link", "Account help", "https://example.com/help/account"),
        ),
    ),
    Intent(
        name="order_tracking",
        label="order tracking",
        topic="orders",
        skills=("general",),
        phrases=(
            "where is my order",
            "where's my order",
            "track my order",
            "tracking number",
            "order status",
            "track my package",
            "where is my package",
            "hasn't arrived",
            "has not arrived",
            "still not here",
        ),
        keywords=("order", "track", "tracking", "package", "parcel"),
        answer=(
            "You can track your order under Account > Orders; the tracking link is also in your shipping "
            "confirmation email. Tracking can take up to 24 hours to update after dispatch."
        ),
        plays=(
            Play("action", "Look up the shipment", "Open the order and check the carrier's latest scan."),
            Play("link", "Order tracking help", "https://example.com/help/tracking"),
        ),
    ),
    Intent(
        name="return_policy",
        label="returns",
        topic="returns",
        skills=("general",),
        phrases=(
            "return policy",
            "return an item",
            "return my",
            "return it",
            "send it back",
            "how do i return",
            "can i return",
            "exchange an item",
        ),
        keywords=("return", "returning", "exchange"),
        answer=(
            "You can return unused items within 30 days of delivery for a full refund or an exchange. "
            "Start a return under Account > Orders > Return item and we'll email you a prepaid label."
        ),
        plays=(
            Play("action", "Create a return label", "Start the return for the customer and email the label."),
            Play("link", "Returns policy", "https://example.com/help/returns"),
        ),
    ),
    Intent(
        name="refund_request",
        label="a refund",
        topic="billing",
        skills=("billing",),
        phrases=("refund", "my money back", "money back", "charged twice", "double charged", "chargeback"),
        keywords=("refund", "refunded", "money", "chargeback"),
        answer=None,
        plays=(
            Play(
                "action",
                "Issue the refund",
                "Find the order in the billing system and refund it; it shows up within 5-7 business days.",
            ),
            Play("link", "Refund policy", "https://example.com/help/refunds"),
        ),
    ),
    Intent(
        name="billing_question",
        label="a billing question",
        topic="billing",
        skills=("billing",),
        phrases=("my invoice", "payment failed", "was charged", "credit card", "my bill", "my subscription"),
        keywords=("invoice", "payment", "billing", "bill", "charge", "charged", "subscription"),
        answer=None,
        plays=(
            Play("action", "Review the payments", "Open the customer's billing history and check the charges."),
            Play("link", "Billing help", "https://example.com/help/billing"),
        ),
    ),
    Intent(
        name="greeting",
        label="a greeting",
        topic="smalltalk",
        skills=(),
        phrases=("hello", "hi", "hey", "good morning", "good afternoon", "good evening"),
        keywords=(),
        answer=(
            "Hi! I'm the demo assistant. I can help with opening hours, shipping times, password resets, "
            "order tracking and returns. What can I do for you?"
        ),
        smalltalk=True,
    ),
    Intent(
        name="thanks",
        label="thanks",
        topic="smalltalk",
        skills=(),
        phrases=("thanks", "thank you", "cheers", "that helps", "great, thanks"),
        keywords=(),
        answer="You're welcome! Is there anything else I can help you with?",
        smalltalk=True,
    ),
)

DEFAULT_PLAYS: tuple[Play, ...] = (
    Play("action", "Check the account", "Look at the customer's recent orders and tickets for context."),
    Play("link", "Help centre", "https://example.com/help"),
)

# Each phrase or signal adds evidence; `brain._noisy_or` combines them.
PHRASE_WEIGHT = 0.7
KEYWORD_WEIGHT = 0.3

HUMAN_NOUNS = frozenset(
    {
        "human",
        "person",
        "people",
        "agent",
        "representative",
        "rep",
        "operator",
        "someone",
        "somebody",
        "manager",
        "supervisor",
        "colleague",
        "staff",
    }
)
REQUEST_VERBS = frozenset(
    {
        "talk",
        "speak",
        "chat",
        "connect",
        "transfer",
        "get",
        "want",
        "need",
        "put",
        "escalate",
        "contact",
        "call",
    }
)
HUMAN_PHRASES = ("real person", "live agent", "human please", "a human", "real human", "actual person")

ANGRY_PHRASES = (
    "ridiculous",
    "unacceptable",
    "useless",
    "waste of time",
    "worst",
    "terrible",
    "awful",
    "horrible",
    "pathetic",
    "incompetent",
    "fed up",
    "sick of",
    "furious",
    "angry",
    "scam",
    "not helpful",
    "no help",
    "not listening",
    "are you kidding",
    "wtf",
    "refund now",
    "money back now",
)
REPEAT_PHRASES = ("already told", "i already", "third time", "second time", "how many times", "again")
ANGRY_WEIGHT = 0.6
REPEAT_WEIGHT = 0.4
EXCLAIM_WEIGHT = 0.3
SHOUT_WEIGHT = 0.3
