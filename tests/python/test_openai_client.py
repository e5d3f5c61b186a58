"""The OpenAI-compatible endpoint through the official `openai` Python client (PyPI):
non-streaming, streaming, and a wrong tenant's token, against the real binary."""

import unittest

import openai

from bulkhead_server import Server, contract

QUESTION = "Which state's laws govern the Lifeway endorsement agreement?"
FREE_FORM = "What does Lifeway pay under the endorsement agreement?"


class OpenAiClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.a = cls.server.tenant("Northwind")
        cls.b = cls.server.tenant("Contoso")
        editor = cls.server.token(cls.a, "bob", "editor")
        cls.document = cls.server.upload(cls.a, editor, contract("LifewayFoods"))
        cls.client_a = openai.OpenAI(
            base_url=f"{cls.server.base}/v1", api_key=cls.server.token(cls.a, "carol", "reader"), max_retries=0
        )
        cls.client_b = openai.OpenAI(
            base_url=f"{cls.server.base}/v1", api_key=cls.server.token(cls.b, "mallory", "reader"), max_retries=0
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_models_lists_the_appliance(self):
        ids = [model.id for model in self.client_a.models.list()]
        self.assertEqual(ids, ["bulkhead"])

    def test_non_streaming_answer_has_citations_and_usage(self):
        completion = self.client_a.chat.completions.create(
            model="bulkhead", messages=[{"role": "user", "content": QUESTION}]
        )
        message = completion.choices[0].message
        self.assertEqual(completion.object, "chat.completion")
        self.assertIn("Illinois", message.content)
        citations = message.model_extra["citations"]
        self.assertEqual(citations[0]["document_id"], self.document)
        # A clause question is answered by the rules (no model tokens); a free-form one by
        # the model, whose tokens the usage counts.
        free_form = self.client_a.chat.completions.create(
            model="bulkhead", messages=[{"role": "user", "content": FREE_FORM}]
        )
        self.assertGreater(free_form.usage.prompt_tokens, 0)
        self.assertGreater(free_form.usage.completion_tokens, 0)
        for usage in (completion.usage, free_form.usage):
            self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)

    def test_streaming_ends_with_citations(self):
        stream = self.client_a.chat.completions.create(
            model="bulkhead", stream=True, messages=[{"role": "user", "content": QUESTION}]
        )
        chunks = list(stream)
        self.assertTrue(all(chunk.object == "chat.completion.chunk" for chunk in chunks))
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        self.assertIn("Illinois", text)
        last = chunks[-1]
        self.assertEqual(last.choices[0].finish_reason, "stop")
        self.assertEqual(last.model_extra["citations"][0]["document_id"], self.document)
        self.assertEqual(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens)

    def test_another_tenants_token_sees_nothing_of_this_tenant(self):
        completion = self.client_b.chat.completions.create(
            model="bulkhead", messages=[{"role": "user", "content": QUESTION}], extra_body={"user": self.a}
        )
        message = completion.choices[0].message
        self.assertEqual(message.model_extra["citations"], [])
        self.assertNotIn("Illinois", message.content)
        self.assertNotIn(self.document, completion.model_dump_json())

    def test_errors_are_openai_errors(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            self.client_a.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        self.assertEqual(caught.exception.code, "model_not_found")
        with self.assertRaises(openai.BadRequestError):
            self.client_a.chat.completions.create(model="bulkhead", messages=[{"role": "system", "content": "x"}])
        with self.assertRaises(openai.BadRequestError):
            self.client_a.chat.completions.create(model="bulkhead", messages=[{"role": "user", "content": "x" * 2001}])
        platform = openai.OpenAI(
            base_url=f"{self.server.base}/v1", api_key=self.server.platform_token(), max_retries=0
        )
        with self.assertRaises(openai.PermissionDeniedError):
            platform.chat.completions.create(model="bulkhead", messages=[{"role": "user", "content": QUESTION}])
        stranger = openai.OpenAI(base_url=f"{self.server.base}/v1", api_key="not-a-token", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            stranger.models.list()


if __name__ == "__main__":
    unittest.main()
