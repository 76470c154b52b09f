-- The physical table behind the logical customers(id, name, email, phone) of
-- examples/security-claim.toml: the application never names *_cipher or
-- *_assisted; the proxy does.
DROP TABLE IF EXISTS customers;
CREATE TABLE customers (
  id BIGINT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  email_cipher VARBINARY(300) NULL,     -- 1 + 1 + len(key id) + 12 + len(plaintext) + 16 bytes
  email_assisted BINARY(32) NULL,
  phone_cipher VARBINARY(200) NULL,
  UNIQUE KEY (email_assisted)           -- unique emails, enforced on ciphertext
);
