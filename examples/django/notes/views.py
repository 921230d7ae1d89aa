"""Views of the example: the guestbook page (GET shows notes, POST adds one), POST /later (the
Celery worker adds the note) and a health check."""
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from . import tasks
from .models import Heartbeat, Note


def _text(request):
    return request.POST.get("text", "").strip()[:200]


def _empty():
    return HttpResponse("the form field 'text' is empty\n", status=400, content_type="text/plain")


def index(request):
    if request.method == "POST":
        text = _text(request)
        if not text:
            return _empty()
        Note.objects.create(text=text)
        return redirect("index")        # POST/redirect/GET: a reload does not post twice
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:20],
                                                "beat": Heartbeat.objects.filter(name="beat").first()})


def later(request):
    """Queue the note for the worker (Redis carries the task); the page shows it once it ran."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    text = _text(request)
    if not text:
        return _empty()
    tasks.add_note.delay(text)
    return redirect("index")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
