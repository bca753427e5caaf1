"""The HTTP side: webhooks (Vonage), pages (people), media (playback)."""
