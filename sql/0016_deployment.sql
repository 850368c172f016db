-- 0016_deployment.sql - the deployment's identity: one row, a random id.
--
-- Every quorumd on this database (and its Redis) is the same deployment: a
-- lease granted by one may be submitted through another. Agents spool results
-- keyed by this id and the user, not by a broker URL, so a result spooled
-- against one broker is delivered through any other of the deployment (and
-- never to another deployment). quorumd reads the id at start and reports it
-- (GET /v1/whoami, and the Quorum-Deployment header of every JSON answer).
CREATE TABLE deployment (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment DEFAULT VALUES;
