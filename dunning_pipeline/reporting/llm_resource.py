"""The reminder suggester as a Dagster resource: an OpenAI-compatible chat endpoint, optional.

Bound in `dunning_pipeline.definitions` to DUNNING_LLM_URL (base URL, e.g.
http://127.0.0.1:11434/v1 for Ollama), DUNNING_LLM_MODEL and DUNNING_LLM_API_KEY (a secret,
through dagster.EnvVar). Without a URL and a model the drafts keep their template text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dunning_pipeline import settings

if TYPE_CHECKING:  # the suggester (and requests) is imported when a step asks for it, not at load
    from dunning_pipeline.reporting.suggester import Suggester

URL_VAR = "DUNNING_LLM_URL"
MODEL_VAR = "DUNNING_LLM_MODEL"
API_KEY_VAR = "DUNNING_LLM_API_KEY"


class LlmSuggesterResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat completions endpoint (Ollama, vLLM or hosted) that personalises
    the reminder drafts; unset: the templates stand."""

    url: str | None = Field(default=None, description=f"base URL of the endpoint ({URL_VAR})")
    model: str | None = Field(default=None, description=f"model name ({MODEL_VAR})")
    api_key: str | None = Field(default=None, repr=False,
                                description=f"API key ({API_KEY_VAR}); a secret: bind it with EnvVar")
    timeout_seconds: float = Field(default=30.0, gt=0, description="per request; after a timeout no more requests")

    def get_suggester(self) -> Suggester:
        from dunning_pipeline.reporting.suggester import ChatClient, Suggester

        if not self.url or not self.model:
            return Suggester(None)
        url = settings.check_http_url(self.url, URL_VAR)
        return Suggester(ChatClient(url=url, model=self.model, api_key=self.api_key,
                                    timeout_seconds=self.timeout_seconds))
