"""formcall-webhook: web-form and CRM webhooks into FormCall (ClickFono) phone calls."""

__version__ = "0.1.0"
