"""Every text the bot sends comes from bot/ui.py: the routers pass ui's texts, never their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).parents[2] / "bot"
# The routers, and the bot's other modules that answer (the access check, the notifier).
ROUTERS = [*sorted(BOT.glob("routers/*.py")), BOT / "access.py", BOT / "notifier.py"]

# method -> the positional index of the text it sends, and the keywords that carry text
SENDS: dict[str, tuple[int | None, tuple[str, ...]]] = {
    "answer": (0, ("text",)),  # Message.answer, CallbackQuery.answer
    "reply": (0, ("text",)),
    "edit_text": (0, ("text",)),
    "edit_caption": (0, ("caption",)),
    "send_message": (1, ("text",)),
    "answer_callback_query": (1, ("text",)),
    "answer_photo": (None, ("caption",)),
    "answer_document": (None, ("caption",)),
    "send_photo": (None, ("caption",)),
    "send_document": (None, ("caption",)),
    "tell": (2, ("sentence",)),  # bot/routers/errors.py: an answer where the person is
}
# A refusal raised in a router is sent too (bot/routers/errors.py says str(exception)).
REFUSALS = {"InvalidInput", "NotFound", "InvalidRecipient", "InvalidWhen", "InvalidTemplate"}


def literals(node: ast.AST) -> list[ast.Constant]:
    """String literals anywhere in a sent text (f-strings and concatenations included)."""
    return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def sent_texts(call: ast.Call) -> list[ast.expr]:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in SENDS:
        position, keywords = SENDS[name]
        texts = [k.value for k in call.keywords if k.arg in keywords]
        if position is not None and len(call.args) > position:
            texts.append(call.args[position])
        return texts
    return []


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        texts: list[ast.expr] = []
        if isinstance(node, ast.Call):
            texts = sent_texts(node)
        elif (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name)
            and node.exc.func.id in REFUSALS
        ):
            texts = [*node.exc.args, *(k.value for k in node.exc.keywords)]
        for text in texts:
            found += [f"{path.name}:{c.lineno}: {c.value!r}" for c in literals(text)]
    return found


@pytest.mark.parametrize("path", ROUTERS, ids=[p.name for p in ROUTERS])
def test_routers_send_only_texts_from_ui(path: Path) -> None:
    assert offences(path) == [], "move these texts into bot/ui.py"


def test_the_scan_finds_a_literal_in_each_kind_of_send(tmp_path: Path) -> None:
    router = tmp_path / "router.py"
    router.write_text(
        "async def handler(message, query, bot, n):\n"
        "    await message.answer('hello')\n"
        "    await query.answer(f'Saved #{n}', show_alert=True)\n"
        "    await query.message.edit_text(text='gone ' + str(n))\n"
        "    await bot.send_message(1, 'hi')\n"
        "    await message.answer_photo(n, caption='Scan this')\n"
        "    await message.answer(ui.cap('\\n'.join(n)))\n"
        "    await bot.send_message(1, ui.hello())\n"
        "    await tell(bot, update, 'Something went wrong')\n"
        "    raise InvalidInput('Write it as ...')\n",
        encoding="utf-8",
    )
    assert sorted({int(line.split(":")[1]) for line in offences(router)}) == [
        2,
        3,
        4,
        5,
        6,
        7,
        9,
        10,
    ]
