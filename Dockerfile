FROM python:3.11-slim-bookworm

ARG TERRAFORM_VERSION=1.11.4
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# Terraform runs the provisioning steps; curl and unzip fetch it and are removed after.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && curl -fsSLo /tmp/terraform.zip \
      "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_amd64.zip" \
 && unzip /tmp/terraform.zip terraform -d /usr/local/bin \
 && rm /tmp/terraform.zip \
 && apt-get purge -y curl unzip && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && terraform version

WORKDIR /app
COPY pyproject.toml ./
COPY portal ./portal
COPY requests_app ./requests_app
COPY provisioning ./provisioning
COPY dashboards ./dashboards
RUN pip install --no-cache-dir .
COPY . .
RUN DJANGO_DEBUG=false ALLOWED_HOSTS=build SECRET_KEY=build-only-key-build-only-key-build-only-key-0123456789 \
      python manage.py collectstatic --noinput \
 && useradd --system --home /app portal && mkdir -p /var/lib/portal && chown portal /var/lib/portal
USER portal
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
