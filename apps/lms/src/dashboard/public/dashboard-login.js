// The dashboard's login: posts to the LMS's own POST /login as JSON with Django's CSRF header,
// then opens the dashboard. Without script the form posts the same fields natively.
const form = document.getElementById('login-form');
const status = document.getElementById('login-status');

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  status.textContent = 'Logging in…';
  status.dataset.kind = '';
  const response = await fetch('/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'X-CSRFToken': csrfToken() },
    body: JSON.stringify({
      username: form.elements.username.value,
      password: form.elements.password.value,
    }),
  });
  if (response.ok) {
    window.location.assign('/dashboard');
    return;
  }
  const body = await response.json().catch(() => ({}));
  status.textContent = body.detail ?? `Login failed (HTTP ${response.status})`;
  status.dataset.kind = 'error';
});
