"""A server-rendered Django app in one file, laid out like Django's admin:
an edit page per customer rendered from a Django form, posts checked by
Django's CSRF middleware (a token masked anew on every page), a session
login (users alice/wonder and bob/builder), an update answered 302 to the
list, a create answered 302 to the new customer's page, a delete with its
own confirmation URL, and a sign-out form above every page's own form.
Rows live in memory. The integration tests put auditgate in front of it.

Run: python app.py 127.0.0.1:PORT
"""

import sys
import threading

from django import forms
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tests-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
    USE_TZ=True,
)

import django  # noqa: E402

django.setup()

from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.template import engines  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402

USERS = {"alice": "wonder", "bob": "builder"}
ROWS = {}
LOCK = threading.Lock()
NEXT = [1]

PAGE = engines["django"].from_string(
    """<!DOCTYPE html>
<html><head><title>{{ title }}</title></head><body>
{% if user %}<form method="post" action="/logout/">{% csrf_token %}<button>Sign out {{ user }}</button></form>{% endif %}
<h1>{{ title }}</h1>
{% if form %}<form method="post" id="customer-form">{% csrf_token %}
{{ form.as_p }}
<input type="submit" value="Save">
</form>{% endif %}
{{ body|safe }}
</body></html>"""
)


class CustomerForm(forms.Form):
    name = forms.CharField(max_length=100)
    email = forms.EmailField()
    active = forms.BooleanField(required=False)
    plan = forms.ChoiceField(choices=[("basic", "Basic"), ("pro", "Professional"), ("team", "Team")])
    tags = forms.MultipleChoiceField(
        choices=[("vip", "VIP"), ("late", "Pays late"), ("eu", "EU")], required=False
    )
    notes = forms.CharField(widget=forms.Textarea, required=False, strip=False)
    new_password = forms.CharField(widget=forms.PasswordInput, required=False)


def render(request, title, form=None, body="", status=200):
    html = PAGE.render({"title": title, "form": form, "body": body, "user": request.session.get("user")}, request)
    return HttpResponse(html, status=status)


def signed_in(view):
    def wrapped(request, *args, **kwargs):
        if not request.session.get("user"):
            return HttpResponseRedirect("/login/")
        return view(request, *args, **kwargs)

    return wrapped


def login(request):
    if request.method == "POST":
        name = request.POST.get("username", "")
        if name in USERS and USERS[name] == request.POST.get("password"):
            request.session.cycle_key()
            request.session["user"] = name
            return HttpResponseRedirect("/customers/")
        return render(request, "Sign in", body="<p>Wrong name or password.</p>", status=401)
    fields = '<input name="username"><input type="password" name="password"><button>Sign in</button>'
    return render(request, "Sign in", body=f'<form method="post">{token(request)}{fields}</form>')


def token(request):
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{get_token(request)}">'


def logout(request):
    request.session.flush()
    return HttpResponseRedirect("/login/")


def whoami(request):
    return JsonResponse({"username": request.session.get("user")})


def saved(form):
    """The row a valid form gives, normalised as the app keeps it."""
    data = dict(form.cleaned_data)
    data["email"] = data["email"].lower()
    data.pop("new_password")
    return data


@signed_in
def customers(request):
    items = "".join(f'<li><a href="/customers/{i}/">{r["name"]}</a></li>' for i, r in sorted(ROWS.items()))
    return render(request, "Customers", body=f'<ul>{items}</ul><a href="/customers/add/">Add customer</a>')


@signed_in
def add(request):
    form = CustomerForm(request.POST or None, initial={"active": True, "plan": "basic"})
    if request.method == "POST" and form.is_valid():
        with LOCK:
            pk = NEXT[0]
            NEXT[0] += 1
            ROWS[pk] = saved(form)
        return HttpResponseRedirect(f"/customers/{pk}/")
    return render(request, "Add customer", form=form)


@signed_in
def change(request, pk):
    if pk not in ROWS:
        raise Http404
    form = CustomerForm(request.POST or None, initial=ROWS[pk])
    if request.method == "POST":
        if form.is_valid():
            with LOCK:
                ROWS[pk] = saved(form)
            return HttpResponseRedirect("/customers/")
        return render(request, f"Change {ROWS[pk]['name']}", form=form, status=400)
    return render(request, f"Change {ROWS[pk]['name']}", form=form)


@signed_in
def delete(request, pk):
    if pk not in ROWS:
        raise Http404
    if request.method == "POST":
        with LOCK:
            del ROWS[pk]
        return HttpResponseRedirect("/customers/")
    return render(
        request,
        "Are you sure?",
        body=f'<form method="post">{token(request)}<input type="submit" value="Yes, delete"></form>',
    )


urlpatterns = [
    path("login/", login),
    path("logout/", logout),
    path("whoami/", whoami),
    path("customers/", customers),
    path("customers/add/", add),
    path("customers/<int:pk>/", change),
    path("customers/<int:pk>/delete/", delete),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "runserver", "--noreload", sys.argv[1]])
