"""The audio socket: every binary frame appended to a file of its own."""

from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings


class AudioConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope["query_string"].decode())
        settings.AUDIO_DIR.mkdir(parents=True, exist_ok=True)
        self.audio = open(settings.AUDIO_DIR / f"{query['uuid'][0]}.pcm", "xb")  # noqa: SIM115
        self.frames = 0
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data:
            self.audio.write(bytes_data)
            self.frames += 1

    async def disconnect(self, code):
        self.audio.close()
        done = self.audio.name.replace(".pcm", ".done")
        with open(done, "w") as marker:
            marker.write(str(self.frames))
