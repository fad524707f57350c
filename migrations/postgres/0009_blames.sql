-- Keep this file and the other database's 0009_blames.sql the same.
-- Every commit a flight named the culprit of a regression, with the steps it broke: a flight
-- may name several (one per regression). `flights.culprit` stays the oldest of them. Later
-- flights read these to know what was blamed before (the finder does not take a blamed
-- commit's failures to reach the tip, and its author is mailed once, not once per flight).
CREATE TABLE blames (
    flight_id BIGINT NOT NULL REFERENCES flights(id),
    sha TEXT NOT NULL,
    steps TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (flight_id, sha)
);
CREATE INDEX blames_sha ON blames(sha);
