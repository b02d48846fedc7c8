# Apple Root CA - G3, the trust anchor of every App Store Server Notification (JWS x5c chain).
#
# It is not committed to this repository. At plan time:
#   1. data.http downloads it (DER bytes, exposed as response_body_base64);
#   2. data.external hashes the real bytes with scripts/sha256_of_base64.sh, and its postcondition
#      fails the plan unless the SHA-256 equals the fingerprint pinned below;
#   3. the PEM text built from exactly those checked bytes goes into the function source archive as
#      certs/AppleRootCA-G3.pem, and APPLE_ROOT_CERTS points at that path.
# At start-up the Apple function checks the fingerprint again and refuses to start with Production
# enabled and no Apple Root CA - G3 configured (defence in depth: a hand-edited bundle fails there).
#
# Why a program: Terraform's sha256()/base64sha256() hash a string's UTF-8 text, and base64decode()
# rejects bytes that are not UTF-8, so no built-in function can fingerprint a binary DER file.

locals {
  # SHA-256 fingerprint of Apple Root CA - G3 as published by Apple. Deliberately not a variable.
  apple_root_ca_g3_sha256 = "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"

  # Path inside the source archive; the function resolves relative APPLE_ROOT_CERTS entries against
  # its source root (/workspace on Cloud Functions gen2).
  apple_root_ca_g3_path = "certs/AppleRootCA-G3.pem"

  # Built from the base64 echoed back by the hashing program, i.e. from the bytes that were checked.
  apple_root_ca_g3_pem = join("\n", concat(
    ["-----BEGIN CERTIFICATE-----"],
    regexall(".{1,64}", data.external.apple_root_ca_g3_sha256.result.base64),
    ["-----END CERTIFICATE-----", ""],
  ))
}

data "http" "apple_root_ca_g3" {
  url = var.apple_root_ca_url

  request_headers = {
    Accept = "application/pkix-cert, application/x-x509-ca-cert, */*"
  }

  retry {
    attempts     = 3
    min_delay_ms = 1000
    max_delay_ms = 5000
  }

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Downloading Apple Root CA - G3 from ${var.apple_root_ca_url} did not answer 200."
    }
  }
}

data "external" "apple_root_ca_g3_sha256" {
  program = ["sh", "${path.module}/scripts/sha256_of_base64.sh"]

  query = {
    base64 = data.http.apple_root_ca_g3.response_body_base64
  }

  lifecycle {
    postcondition {
      condition     = self.result.sha256 == local.apple_root_ca_g3_sha256
      error_message = "The certificate downloaded from ${var.apple_root_ca_url} is not Apple Root CA - G3: its SHA-256 is ${self.result.sha256}, expected ${local.apple_root_ca_g3_sha256}. Refusing to deploy."
    }
    postcondition {
      condition     = self.result.base64 == data.http.apple_root_ca_g3.response_body_base64
      error_message = "The hashing program did not echo the certificate it hashed."
    }
  }
}
