"""Tables in three formats: CSV, Markdown and LaTeX (booktabs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from refsr.core.atomic import write_text
from refsr.core.markdown import markdown_table

_TEX_UNICODE = [
    ("\u21132", r"$\ell_2$"), ("\u2113", r"$\ell$"), ("\u03c3", r"$\sigma$"),
    ("\u00d7", r"$\times$"), ("\u2014", "---"), ("\u2013", "--"), ("\u2020", r"$^\dagger$"),
    ("\u2021", r"$^\ddagger$"),
    ("\u2191", r"$\uparrow$"), ("\u2193", r"$\downarrow$"), ("\u0394", r"$\Delta$"),
]
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                "`": r"\textasciigrave{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials; map the few Unicode symbols the captions use to math."""
    out = "".join(_TEX_SPECIAL.get(c, c) for c in str(text))
    for uni, tex in _TEX_UNICODE:
        out = out.replace(uni, tex)
    return out


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The report's Markdown table: first column left-aligned, the others right-aligned
    (:func:`refsr.core.markdown.markdown_table`)."""
    return markdown_table(header, rows, align="l" + "r" * (len(header) - 1))


def tex_table(caption: str, label: str, colspec: str, head: Sequence[str],
              rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> str:
    """A booktabs table; ``head`` lines are raw LaTeX (already escaped), rows are cells."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", *head, r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"{\footnotesize " + r" \\ ".join(latex_escape(n) for n in notes)
                  + "}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def md_doc(title: str, caption: str, body: str, notes: Sequence[str]) -> str:
    text = f"**{title}.** {caption}\n\n{body}"
    if notes:
        text += "\n" + "\n".join(f"{n}  " for n in notes) + "\n"
    return text


def tidy_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6f", na_rep="nan")


@dataclass
class Table:
    """One table in its three formats."""

    name: str
    csv: str
    md: str
    tex: str

    def write(self, csv_path, md_path, tex_path) -> None:
        write_text(csv_path, self.csv)
        write_text(md_path, self.md)
        write_text(tex_path, self.tex)
