"""Views of the example: the guestbook page (GET shows notes, POST adds one) and a health check."""
from django.http import HttpResponse
from django.shortcuts import redirect, render

from .models import Note


def index(request):
    if request.method == "POST":
        text = request.POST.get("text", "").strip()
        if not text:
            return HttpResponse("the form field 'text' is empty\n", status=400, content_type="text/plain")
        Note.objects.create(text=text[:200])
        return redirect("index")        # POST/redirect/GET: a reload does not post twice
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:20]})


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
