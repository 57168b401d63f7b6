#!/usr/bin/env python3
"""Builds the tokenizer test corpus (Tests/Fixtures/tokenizers/corpus.txt) from text found offline.

Sources (all read from the local machine, nothing downloaded):
  * English prose: /usr/share/common-licenses, Python's pydoc topics, man pages;
  * translated prose in many scripts: gettext catalogues under /usr/share/locale (msgstr strings);
  * code: the Python standard library, C headers, Java sources (JDK src.zip), Swift interfaces,
    JavaScript / TypeScript from node_modules, SQL, shell scripts;
  * URLs and paths harvested from /usr/share/doc;
  * generated lines for whitespace runs, numbers, punctuation runs, emoji (ZWJ, skin tones, flags),
    contractions, special-token strings, Unicode edge cases, long lines and mixtures of all the above.

Output format: one entry per line, UTF-8. Inside an entry, a backslash escapes: `\\n` newline,
`\\r` carriage return, `\\\\` backslash, `\\xHH` any other C0 control or DEL. Tabs and every other
character are literal. Only the byte 0x0A separates entries.

The output is deterministic for a given machine (fixed seed, sorted file lists). Usage:
    python3 Tools/scripts/build_tokenizer_corpus.py [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import glob
import gettext
import gzip
import io
import os
import random
import re
import unicodedata
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "corpus.txt")
SIZE_BUDGET = 240_000  # bytes of escaped corpus text


def escape(entry: str) -> str:
    out = []
    for ch in entry:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\t")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02X" % o)
        else:
            out.append(ch)
    return "".join(out)


def read_text(path: str, limit: int = 400_000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return ""
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except Exception:
            return ""
    return data.decode("utf-8", errors="ignore")


def lines_of(text: str) -> list[str]:
    return [l for l in text.split("\n")]


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.entries: list[str] = []
        self.seen: set[str] = set()

    def add(self, entry: str) -> None:
        if entry in self.seen:
            return
        self.seen.add(entry)
        self.entries.append(entry)

    def sample(self, items: list, k: int) -> list:
        items = list(items)
        if len(items) <= k:
            self.rng.shuffle(items)
            return items
        return self.rng.sample(items, k)

    # ---------------------------------------------------------------- prose
    def english(self, n_lines: int, n_paragraphs: int) -> None:
        texts = []
        for path in sorted(glob.glob("/usr/share/common-licenses/*")):
            if os.path.isfile(path):
                texts.append(read_text(path))
        try:
            import pydoc_data.topics as topics  # type: ignore
            for key in sorted(topics.topics):
                texts.append(topics.topics[key])
        except Exception:
            pass
        candidates = []
        paragraphs = []
        for text in texts:
            ls = lines_of(text)
            candidates += [l for l in ls if len(l.strip()) > 25]
            block = []
            for l in ls + [""]:
                if l.strip():
                    block.append(l)
                elif block:
                    if 2 <= len(block) <= 6:
                        paragraphs.append("\n".join(block))
                    block = []
        for l in self.sample(candidates, n_lines):
            self.add(l)
        for p in self.sample(paragraphs, n_paragraphs):
            # some paragraphs keep a trailing blank line or use CRLF line ends
            r = self.rng.random()
            if r < 0.15:
                p = p.replace("\n", "\r\n")
            elif r < 0.3:
                p += "\n\n"
            self.add(p)

    def man_pages(self, n: int) -> None:
        lines = []
        for path in sorted(glob.glob("/usr/share/man/man1/*.gz"))[:400]:
            for l in lines_of(read_text(path, 60_000)):
                if len(l) > 20:
                    lines.append(l)
        for l in self.sample(lines, n):
            self.add(l)

    def translations(self, plan: dict[str, int]) -> None:
        for lang, count in plan.items():
            strings = []
            for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
                if re.search(r"iso_|xkeyboard", mo):
                    continue  # mostly single words (country / layout names)
                try:
                    with open(mo, "rb") as f:
                        catalog = gettext.GNUTranslations(f)
                except Exception:
                    continue
                for key, value in catalog._catalog.items():  # type: ignore[attr-defined]
                    if isinstance(value, str) and len(value) >= 18 and key:
                        strings.append(value)
            strings = sorted(set(strings))
            for s in self.sample(strings, count):
                self.add(s)

    # ---------------------------------------------------------------- code
    def code(self, plan: dict[str, int], n_blocks: int) -> None:
        pools: dict[str, list[str]] = {}

        def pool_from_files(name: str, paths: list[str], per_file: int = 200_000) -> None:
            lines = []
            for p in paths:
                lines += [l for l in lines_of(read_text(p, per_file)) if l.strip() and len(l) < 200]
            pools[name] = lines

        import sysconfig
        stdlib = sysconfig.get_paths()["stdlib"]
        pool_from_files("python", sorted(glob.glob(stdlib + "/*.py"))[:150])
        pool_from_files("c", sorted(glob.glob("/usr/include/*.h"))[:150])
        pool_from_files("swift", sorted(glob.glob("/opt/swift/usr/lib/swift/linux/*.swiftmodule/*.swiftinterface"))[:20])
        pool_from_files("js", sorted(glob.glob("/usr/lib/node_modules/npm/node_modules/*/lib/*.js"))[:80]
                        + sorted(glob.glob("/usr/lib/node_modules/npm/node_modules/*/dist/esm/*.d.ts"))[:30])
        pool_from_files("sql", sorted(glob.glob("/usr/share/postgresql/*/extension/*.sql"))[:80])
        pool_from_files("shell", sorted(glob.glob("/usr/bin/*"))[:0]
                        + [p for p in sorted(glob.glob("/etc/*.sh") + glob.glob("/etc/profile.d/*.sh")
                                             + glob.glob("/usr/share/bash-completion/completions/*"))[:60]])
        java = []
        for z in sorted(glob.glob("/usr/lib/jvm/*/lib/src.zip"))[:1]:
            try:
                with zipfile.ZipFile(z) as zf:
                    names = sorted(n for n in zf.namelist() if n.startswith("java.base/java/util/") and n.endswith(".java"))
                    for name in names[:40]:
                        java += [l for l in zf.read(name).decode("utf-8", "ignore").split("\n") if l.strip() and len(l) < 200]
            except Exception:
                pass
        pools["java"] = java
        for name, count in plan.items():
            for l in self.sample(pools.get(name, []), count):
                self.add(l.rstrip("\r"))
        # multi-line blocks keep their indentation (spaces and tabs) and blank lines
        for _ in range(n_blocks):
            name = self.rng.choice([k for k in pools if pools[k]])
            text_pool = pools[name]
            i = self.rng.randrange(max(1, len(text_pool) - 8))
            self.add("\n".join(text_pool[i:i + self.rng.randint(2, 7)]))
        # JSON / YAML / HTML snippets generated from real strings
        for _ in range(30):
            k = self.rng.choice(["name", "version", "description", "main", "license", "id", "url"])
            v = self.rng.choice(pools["python"]).strip()[:40].replace("\\", "/").replace('"', "'")
            n = self.rng.randint(0, 10**6)
            self.add(self.rng.choice([
                f'{{"{k}": "{v}", "count": {n}, "ok": true, "tags": ["a", "b"]}}',
                f'  {k}: "{v}"\n  count: {n}\n  enabled: false',
                f'<div class="{k}" data-n="{n}"><p>{v}</p></div>',
                f'    "{k}": {n},',
            ]))

    # ---------------------------------------------------------------- urls
    def urls(self, n: int) -> None:
        found = set()
        for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:400]:
            for m in re.finditer(r"(https?://[^\s<>\")]+|[\w.+-]+@[\w-]+\.[\w.]+)", read_text(path, 50_000)):
                found.add(m.group(1))
        found = sorted(found)
        for u in self.sample(found, n):
            r = self.rng.random()
            if r < 0.3:
                self.add(f"See {u} for details.")
            elif r < 0.45:
                self.add(f"<{u}>")
            else:
                self.add(u)
        for p in ["/usr/share/doc/README.md", "C:\\Program Files\\App\\bin\\app.exe", "~/.cache/softpromptkit/models",
                  "file:///etc/hosts", "ftp://ftp.example.org/pub/file-1.2.3.tar.gz", "../../lib/x86_64-linux-gnu/libc.so.6",
                  "https://example.com/search?q=tokenizer%20test&lang=de#section-2", "mailto:someone@example.org"]:
            self.add(p)

    # ---------------------------------------------------------------- generated categories
    def whitespace(self, n: int) -> None:
        pieces = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \t ",
                  "\u00a0", "\u3000", "\u2003", "\u2009", "\u0085", "\u2028", "\u2029", "\u000b", "\u000c",
                  "\u200b", "\u202f", "        "]
        words = ["word", "Hello", "x", "42", "ünïcödé", "слово", "λέξη", "字", "!", "foo()", "'s", "-", "é"]
        for _ in range(n):
            parts = []
            for _ in range(self.rng.randint(1, 7)):
                parts.append(self.rng.choice(pieces) * self.rng.choice([1, 1, 1, 2, 3, 5]))
                if self.rng.random() < 0.7:
                    parts.append(self.rng.choice(words))
            self.add("".join(parts))
        for s in [" ", "  ", "\t", "\n", "\r\n", "   \n   ", "\n\n\n", "trailing   ", "   leading", "a  b   c    d",
                  "tab\tseparated\tvalues\t", "line one\nline two\n", "\t\tindented", "x \n y", "end\n",
                  " " * 17 + "x", "\t \t \t", "a\u00a0b\u00a0\u00a0c", "A\u3000B", " \u00a0 "]:
            self.add(s)

    def numbers(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            kind = rng.randrange(12)
            if kind == 0:
                s = str(rng.randrange(10 ** rng.randint(1, 40)))
            elif kind == 1:
                s = f"{rng.uniform(-1e6, 1e6):.{rng.randint(1, 9)}f}"
            elif kind == 2:
                s = f"{rng.randrange(10**9):,}"
            elif kind == 3:
                s = f"{rng.uniform(0, 1):.4e}"
            elif kind == 4:
                s = f"0x{rng.randrange(16**8):08X} 0b{rng.randrange(256):08b} 0o{rng.randrange(512):o}"
            elif kind == 5:
                s = f"{rng.randint(1900, 2099)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
            elif kind == 6:
                s = ".".join(str(rng.randrange(256)) for _ in range(4)) + f":{rng.randrange(65536)}"
            elif kind == 7:
                s = f"v{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}-rc{rng.randint(1, 9)}"
            elif kind == 8:
                s = f"+{rng.randint(1, 99)} ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
            elif kind == 9:
                s = f"abc{rng.randrange(10**6)}def {rng.randrange(1000)}px {rng.randrange(100)}% x{rng.randrange(99)}"
            elif kind == 10:
                s = f"Total: {rng.randrange(10**7)} items, {rng.randrange(100)}.{rng.randrange(100):02d} € / ${rng.randrange(10**5)}.99"
            else:
                s = " ".join(str(rng.randrange(10 ** rng.randint(1, 6))) for _ in range(rng.randint(2, 9)))
            self.add(s)
        for s in ["٠١٢٣٤٥٦٧٨٩ ١٢٣", "१२३४५ रुपये", "１２３４５ ６", "x² + y³ = z¹⁰", "½ ¼ ¾ ⅓", "Ⅻ ⅻ Ⅳ", "①②③ ⑩",
                  "๑๒๓ บาท", "一二三 123 百", "3.14159265358979323846264338327950288419716939937510",
                  "000000000000", "1e10 1E-5 -0.0 +5", "12:30:45.678", "10,000,000.00", "99 bottles", "2023年10月1日"]:
            self.add(s)

    def punctuation(self, n: int) -> None:
        runs = ["!!!", "?!", "...", "…", "---", "—", "–", "«»", "„“", "“”", "‘’", "「」", "『』", "。、", "！？", "###",
                "/* */", "=>", "!==", "::", "->", "<<=", "~~~", "***", "___", "|||", "(((", ")))", "[[", "]]", "{}",
                "@@", "$$", "%%", "^^", "&&", "\\\\", "//", "''", '""', "``", ";;", ",,", "::=", "<>", "¿¡", "§¶",
                "·", "•", "†‡", "©®™", "°", "±", "×÷", "≠≤≥", "∑∫", "→←", "♠♥", "★☆", "€£¥", "‰", "⁂"]
        for _ in range(n):
            parts = []
            for _ in range(self.rng.randint(1, 6)):
                parts.append(self.rng.choice(runs) * self.rng.choice([1, 1, 2, 4]))
                sep = self.rng.choice(["", "", " ", "  ", "a", "Word", "\n", "1"])
                parts.append(sep)
            self.add("".join(parts))

    def emoji(self, n: int) -> None:
        base = []
        for cp in list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F6D0)) + list(range(0x1F900, 0x1F9FF)) + list(range(0x2600, 0x27C0)):
            ch = chr(cp)
            if unicodedata.category(ch) == "So":
                base.append(ch)
        tones = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
        zwj = "\u200d"
        people = ["\U0001F468", "\U0001F469", "\U0001F467", "\U0001F466", "\U0001F9D1"]
        sequences = [
            zwj.join(["\U0001F468", "\U0001F469", "\U0001F467", "\U0001F466"]),
            "\U0001F469\U0001F3FD" + zwj + "\U0001F4BB",
            "\U0001F3F3\ufe0f" + zwj + "\U0001F308",
            "\U0001F9D1\U0001F3FF" + zwj + "\U0001F91D" + zwj + "\U0001F9D1\U0001F3FB",
            "\U0001F441\ufe0f" + zwj + "\U0001F5E8\ufe0f",
            "\u2764\ufe0f" + zwj + "\U0001F525",
            "\U0001F1E9\U0001F1EA", "\U0001F1EF\U0001F1F5", "\U0001F1FA\U0001F1F8", "\U0001F1FA\U0001F1E6",
            "1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\u20e3", "\u263a\ufe0f", "\u270c\U0001F3FE",
            "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
        ]
        words = ["I love it", "ok", "Glückwunsch", "привет", "好", "yes!", "42", " ", "", "\n"]
        for _ in range(n):
            parts = []
            for _ in range(self.rng.randint(1, 6)):
                r = self.rng.random()
                if r < 0.35:
                    parts.append(self.rng.choice(base))
                elif r < 0.55:
                    parts.append(self.rng.choice(people) + self.rng.choice(tones))
                elif r < 0.75:
                    parts.append(self.rng.choice(sequences))
                else:
                    parts.append(self.rng.choice(words))
                if self.rng.random() < 0.4:
                    parts.append(" ")
            self.add("".join(parts))
        for s in sequences:
            self.add(s)

    def contractions(self, n: int) -> None:
        subjects = ["I", "you", "he", "she", "it", "we", "they", "John", "the cat", "THE DOG", "Who", "that", "there"]
        suffixes = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
                    "'Re", "'rE", "'Ll", "'lL", "'Ve", "’s", "’ll", "'x", "'", "''", "'st", "'dn't"]
        tails = ["go home", "done.", "been there", "right?", "GONE!", "", " ", "n't", "ve", "\n", "123"]
        for _ in range(n):
            s = " ".join(self.rng.choice(subjects) + self.rng.choice(suffixes) + " " + self.rng.choice(tails)
                         for _ in range(self.rng.randint(1, 3)))
            self.add(s)
        for s in ["don't can't won't shouldn't", "DON'T CAN'T WON'T", "I'm I'M i'm", "we're WE'RE We'Re",
                  "you've YOU'VE", "she'll SHE'LL She'Ll", "he'd HE'D", "it's IT'S It'S", "rock'n'roll",
                  "'tis the season", "y'all'd've", "O'Reilly's", "the students' books", "'quoted'",
                  "\"double 'single' quotes\"", "l'homme d'affaires aujourd'hui", "it's 5 o'clock", "'s", "'", "''s",
                  "'Sam 'TIS 'Twas 'Dora 'Mary 'LLAMA 'REALLY 'VEGAS 'sam 'tis 'dora 'read 'very 'llama",
                  "x'Sx 'S1 'T_ 'M- 'D 'Ll 'lLama 're 'Re\n'VE"]:
            self.add(s)

    def special_tokens(self, n: int) -> None:
        specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<reponame>", "<file_sep>",
                    "<filename>", "<gh_stars>", "<issue_start>", "<jupyter_code>", "<empty_output>", "<s>", "</s>",
                    "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<mask>", "[INST]"]
        partial = ["<|im_start", "im_end|>", "<|im_", "|>", "<|", "<|endoftext", "< s >", "<S>", "<|IM_START|>", "<<s>>"]
        fillers = ["user", "assistant", "system", "Hello!", "What is 2+2?", "Bonjour", "你好", " ", "\n", "",
                   "def f(x):\n    return x", "  spaced  ", "Привет, мир"]
        for _ in range(n):
            parts = []
            for _ in range(self.rng.randint(1, 7)):
                r = self.rng.random()
                if r < 0.45:
                    parts.append(self.rng.choice(specials))
                elif r < 0.55:
                    parts.append(self.rng.choice(partial))
                else:
                    parts.append(self.rng.choice(fillers))
                if self.rng.random() < 0.3:
                    parts.append(self.rng.choice([" ", "\n", "  "]))
            self.add("".join(parts))
        for s in ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
                  "<|im_start|><|im_start|>", "<|im_end|><|im_end|><|im_end|>", "<|endoftext|>", " <|endoftext|> ",
                  "text<|endoftext|>text", "<s>Hello</s>", "<s> Hello </s>", "<unk>", "<<|im_start|>>", "<|im_start|>>",
                  "<|<|im_end|>|>", "<|begin_of_text|><|eot_id|>"]:
            self.add(s)

    def unicode_edges(self) -> None:
        for s in ["e\u0301 a\u0300 o\u0308 n\u0303", "Cafe\u0301 re\u0301sume\u0301", "\u1e9b\u0323 \u212b \u2126",
                  "zero\u200bwidth\u200cjoin\u200dhere", "\ufeffBOM at start", "RTL \u202eevil\u202c text \u200f\u200e",
                  "private \ue000\ue001\U000F0000 use", "unassigned \u0378 \u0379 \U0001FFFF", "new in 16: \u1c89\u1c8a \U00010D40\U00010D41",
                  "new in 15.1: \u2ffc\u2ffd \u31ef", "math \U0001D400\U0001D401\U0001D7CE\U0001D7CF", "gothic \U00010330\U00010331",
                  "CJK ext B \U00020000\U0002A6D6", "Hangul jamo \u1100\u1161\u11a8 \uac00\ud7a3", "Thai ภาษาไทย สวัสดีครับ",
                  "Devanagari क्षत्रिय हिन्दी", "Tamil தமிழ் மொழி", "Bengali বাংলা ভাষা", "Georgian ქართული ენა",
                  "Armenian Հայերեն լեզու", "Ethiopic አማርኛ ቋንቋ", "Hebrew עִבְרִית", "Arabic العَرَبِيَّة", "Persian فارسی‌زبان",
                  "variation \u2764\ufe0e \u2764\ufe0f \u845b\U000E0100", "replacement \ufffd\ufffd", "ANSI \x1b[31mred\x1b[0m",
                  "bell\x07 backspace\x08 null\x00end", "DEL\x7f", "soft\u00adhyphen", "ligature \ufb01\ufb02 \u0132",
                  "fullwidth ＡＢＣ ａｂｃ", "halfwidth ｶﾀｶﾅ", "superscript ᵃᵇᶜ", "modifier ʰʲʷ", "Old Italic \U00010300",
                  "Cherokee ᏣᎳᎩ", "Mongolian ᠮᠣᠩᠭᠣᠯ", "Tibetan བོད་ཡིག", "Khmer ភាសាខ្មែរ", "Lao ພາສາລາວ", "Myanmar မြန်မာ",
                  "Sinhala සිංහල", "Greek ΑΒΓ αβγ ϐϑ", "Cyrillic Ѐ ѐ Ꙁ", "IPA ʃʒθð", "Ogham \u1680\u169b\u169c",
                  "keycap 0\u20e3", "combining only \u0301\u0302", "\u0301start", "tab\u0009mid", "mixed-ASCII→Ünicode←"]:
            self.add(s)

    def long_lines(self) -> None:
        rng = self.rng
        self.add("a" * 700)
        self.add(" " * 300 + "x")
        self.add("\t" * 64 + "deep")
        self.add("".join(rng.choice("0123456789") for _ in range(400)))
        self.add("".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(600)) + "==")
        self.add("ab" * 300)
        self.add("的" * 200)
        self.add("=" * 120 + "\n" + "-" * 120)
        self.add(" ".join(self.entries[i] for i in range(0, min(len(self.entries), 400), 37)).replace("\n", " "))

    def mixtures(self, n: int) -> None:
        pool = [e for e in self.entries if 0 < len(e) < 120]
        for _ in range(n):
            k = self.rng.randint(2, 4)
            glue = self.rng.choice(["", " ", "  ", "\n", "\t", " - ", ": "])
            self.add(glue.join(self.rng.choice(pool) for _ in range(k)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args()

    b = Builder(args.seed)
    b.english(260, 40)
    b.man_pages(60)
    b.translations({"de": 60, "fr": 60, "ru": 60, "el": 60, "zh_CN": 60, "ja": 60, "ko": 60, "ar": 50, "hi": 50,
                    "he": 15, "uk": 15, "vi": 15, "th": 15, "ka": 15, "tr": 15, "pl": 15, "es": 15, "pt_BR": 15,
                    "bn": 10, "ta": 10, "fa": 10, "am": 8, "zh_TW": 15, "cs": 10, "fi": 10, "sv": 10})
    b.code({"python": 180, "c": 90, "java": 70, "swift": 60, "js": 60, "sql": 40, "shell": 40}, 60)
    b.urls(70)
    b.whitespace(110)
    b.numbers(110)
    b.punctuation(70)
    b.emoji(90)
    b.contractions(70)
    b.special_tokens(90)
    b.unicode_edges()
    b.mixtures(160)
    b.long_lines()
    b.add("")

    lines = [escape(e) for e in b.entries]
    # keep within the size budget by dropping random entries of the bulk categories (never the edge cases)
    total = sum(len(l.encode()) + 1 for l in lines)
    while total > SIZE_BUDGET:
        i = b.rng.randrange(len(lines) // 2)
        total -= len(lines[i].encode()) + 1
        del lines[i]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for l in lines:
            f.write(l + "\n")
    print(f"{args.out}: {len(lines)} entries, {total} bytes")


if __name__ == "__main__":
    main()
