package server

// sealedV2Seed is a sealed sender v2 message (base64) from a Go SealV2 to
// one recipient (ACI 9d0652a3-…, device 1, registration id 77), for the
// fuzz seeds.
const sealedV2Seed = "IwEAnQZSo9zDTRGXX3TWFZhzPwEATVjOT+xuAoCVDfdCCSfT8RranOsI5UMY4HDJDBRFm4cRQDTkOemnjcYmJV94Xs+jGv/5YRbfkxpYa6n6sQ+7bzb5koRUNIB3TE8trTPThzshuPFn6ydg3+OAleNZNpyLeGt9+6w9GqcIYh8UR3s3XmBc+1AAb188zgqVVhDej59hwtuJ7NucM+mAHMOSjrcOGyse4lg151Psvs9YVuxJDb00GKhRDtuCdml85ehOCc5U8W+O4Yo8Uy9mUbi691mpPjEtPSYy23w5Sjya2BlItGzOPq/YnUuHuXKwjNYSag1fa27nAEcKWgydGld/wkwf8TgDIiDHBuNw4k8dc3We9pB5YxSH3waBq4ICl+lSFmQQrF5hSBh2bQ47HHA0nKJIBP6Ngw1cSXmeaK5UEUUqyf4aMvLGqIVNOjaXg8/M2kTgI/0FEMN1uhl9vBvq9UupuUwEAMJ9Lkm1xGSdf/g5rVRcCRCgRqa9V+r/IEE="
