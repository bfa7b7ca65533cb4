"""``xkron.fit``'s keywords and the options object they become stay in step (issue 12).

``fit`` passes every keyword into one :class:`xkron.inference.options.FitOptions`; a keyword
added to one and not the other would be lost between the public call and the inference.
"""

from __future__ import annotations

import inspect

import xkron
from xkron.inference.options import FitOptions
from xkron.inference.run import RUNNERS


def test_fit_keywords_are_the_options_fields():
    parameters = inspect.signature(xkron.fit).parameters.values()
    keywords = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keywords == list(FitOptions.keywords())
    assert [p.name for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD] == ["sample_kwargs"]


def test_every_form_and_method_has_a_runner():
    allowed = {
        ("marginal", "map"),
        ("marginal", "nuts"),
        ("latent", "nuts"),
        ("latent", "advi"),
        ("latent", "laplace"),
        ("latent", "inla"),
        ("collapsed", "nuts"),
    }
    assert set(RUNNERS) == allowed
