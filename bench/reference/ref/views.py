"""The answer webhook (an NCCO) and the event webhook (one row each)."""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Event


def answer(request):
    uuid = request.GET["uuid"]
    host = request.get_host()
    return JsonResponse(
        [
            {"action": "talk", "text": "This call is recorded."},
            {
                "action": "connect",
                "endpoint": [
                    {
                        "type": "websocket",
                        "uri": f"ws://{host}/ws/audio?uuid={uuid}",
                        "content-type": "audio/l16;rate=16000",
                        "headers": {"call_uuid": uuid},
                    }
                ],
            },
        ],
        safe=False,
    )


@csrf_exempt
def event(request):
    payload = json.loads(request.body)
    Event.objects.create(
        uuid=payload.get("uuid", ""), status=payload.get("status", ""), payload=payload
    )
    return HttpResponse("")
